//! Reading Spark's own account: the standalone master's `/json/`.

use serde_json::Value;

/// The id of the pipeline's application when the master lists it RUNNING with both workers
/// alive.
pub fn running_app(master: &Value) -> Option<String> {
    let alive = master["workers"]
        .as_array()?
        .iter()
        .filter(|w| w["state"] == "ALIVE")
        .count();
    let app = master["activeapps"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == "firedrill-orders" && a["state"] == "RUNNING")?;
    (alive == 2).then(|| app["id"].as_str().map(str::to_owned))?
}
