//! Renders a [`Report`] for people: Markdown ([`markdown()`]) and one self-contained HTML page
//! with an inline SVG timeline chart ([`html()`]).
//!
//! Both renderers walk the same intermediate document, so they always show the same content;
//! only the chart is HTML-only:
//!
//! - `document`: the layout of a report (which figures, in which order, with which words);
//! - `markdown`, `html`: the document written as Markdown, or as one HTML page;
//! - `chart`: the SVG timeline chart;
//! - `format`: numbers, money, durations and times as text, and the escaping of
//!   user-supplied text (shared with `compare`).
//!
//! Does not own: the report model or any computation of its figures (`drills::report`),
//! serving or storing the output. Pure functions of the report: no I/O, no clock.

mod chart;
mod document;
pub(crate) mod format;
mod html;
mod markdown;

use self::document::Doc;
use super::report::Report;

/// The report as Markdown (GitHub-flavoured tables). Missing values read `n/a`.
pub fn markdown(report: &Report) -> String {
    markdown::render(&Doc::of(report))
}

/// The report as one self-contained HTML page: inline CSS and SVG, no scripts, no external
/// resources. Every piece of text from the report is escaped.
pub fn html(report: &Report) -> String {
    html::page(&Doc::of(report))
}
