//! docs/openapi.yaml and the router list the same routes.

use std::collections::BTreeSet;
use woodpecker_net::routes::ROUTES;

/// (METHOD, path) pairs of the file: paths are the two-space-indented keys
/// under `paths:`, methods the four-space-indented HTTP verbs under them.
fn documented() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"))
            .expect("docs/openapi.yaml");
    let mut routes = BTreeSet::new();
    let mut in_paths = false;
    let mut path = None;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(key) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            path = Some(format!("/{key}"));
        } else if let Some(verb) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')) {
            if ["get", "post", "put", "delete", "patch", "head"].contains(&verb) {
                let path = path.clone().expect("a method under a path");
                routes.insert((verb.to_uppercase(), path));
            }
        }
    }
    routes
}

#[test]
fn the_openapi_file_and_the_router_agree() {
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let documented = documented();
    assert!(documented.len() >= 10, "parsed {documented:?}");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in docs/openapi.yaml: {undocumented:?}; documented but not routed: {unrouted:?}"
    );
}
