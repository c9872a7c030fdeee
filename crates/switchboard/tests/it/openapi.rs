//! The committed OpenAPI document and the routes in the code stay in step, both ways.

use std::collections::BTreeSet;

/// Every `.route("…", …)` path in the product's source.
fn routes_in_source() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split(".route(").skip(1) {
                    let part = part.trim_start();
                    if let Some(rest) = part.strip_prefix('"') {
                        out.insert(rest.split('"').next().unwrap().to_string());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn openapi_documents_exactly_the_routes() {
    let doc: serde_json::Value = serde_json::from_str(switchboard::http::OPENAPI).unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let mut routes = routes_in_source();
    // Served pages, not API.
    routes.remove("/");
    routes.remove("/openapi.json");
    assert_eq!(documented, routes, "openapi.json and the router disagree");
}
