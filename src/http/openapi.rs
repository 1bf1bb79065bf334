//! `GET /openapi.json`: the OpenAPI 3 description of the admin API, a static file kept in
//! the repository next to the router. The tests below hold it to the router's table (same
//! paths, same methods, 401/403 on every mutation, 429 exactly where the rate limit
//! applies); what each body holds is described by hand.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response};

use super::Body;

/// The document, as served.
const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub fn get() -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(DOCUMENT.as_bytes())))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hyper::Method;
    use serde_json::Value;

    use super::{
        super::{Route, ROUTES},
        DOCUMENT,
    };

    /// Keys of a path item that are operations (the others are `parameters`, `summary`..).
    const OPERATIONS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    /// The route a row resolves, with a sample value in each `{..}` segment.
    fn sample(path: &str) -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn is_openapi_3() {
        let doc = document();
        let version = doc["openapi"].as_str().expect("an openapi version string");
        assert!(version.starts_with("3."), "openapi {version}");
        assert!(doc["info"]["title"].is_string());
        assert!(doc["paths"].is_object());
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local references only");
            assert!(doc.pointer(pointer).is_some(), "{r} points nowhere");
        }
    }

    fn collect_refs(value: &Value, refs: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r.clone());
                }
                map.values().for_each(|v| collect_refs(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
            _ => {}
        }
    }

    #[test]
    fn lists_every_route_of_the_router_with_its_methods_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let documented: BTreeSet<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                let item = item.as_object().expect("a path item is an object");
                item.keys()
                    .filter(|k| OPERATIONS.contains(&k.as_str()))
                    .map(move |method| (path.clone(), method.to_uppercase()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .flat_map(|row| {
                row.methods
                    .iter()
                    .map(move |m| (row.path.to_string(), m.as_str().to_string()))
            })
            .collect();
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routed but not in openapi.json: {missing:?}; in openapi.json but not routed: {extra:?}"
        );
    }

    #[test]
    fn every_row_is_reachable_through_the_router() {
        // A row shadowed by an earlier pattern would be documented but never served.
        for row in ROUTES {
            let params: Vec<&str> = row.path.matches('{').map(|_| "x").collect();
            let resolved = Route::resolve(&sample(row.path));
            assert_eq!(
                resolved,
                Some(((row.route)(&params), row.methods)),
                "{} is shadowed by an earlier row",
                row.path
            );
        }
    }

    #[test]
    fn documents_the_auth_and_rate_limit_of_every_mutation() {
        let doc = document();
        for row in ROUTES {
            let route = (row.route)(&row.path.matches('{').map(|_| "x").collect::<Vec<_>>());
            for method in row.methods {
                let op = &doc["paths"][row.path][method.as_str().to_lowercase()];
                let responses = op["responses"].as_object().expect("responses");
                let name = format!("{method} {}", row.path);
                assert!(
                    responses.keys().any(|code| code.starts_with('2')),
                    "{name}: no 2xx response"
                );
                if *method == Method::GET {
                    assert!(
                        !responses.contains_key("429"),
                        "{name}: reads are not limited"
                    );
                    continue;
                }
                for code in ["401", "403"] {
                    assert!(responses.contains_key(code), "{name}: no {code}");
                }
                assert!(op["security"].is_array(), "{name}: no security");
                assert_eq!(
                    responses.contains_key("429"),
                    route.rate_limited(method),
                    "{name}: 429 documented iff the route is rate limited"
                );
            }
        }
    }
}
