//! Templates from an OpenAPI document (3.x, or Swagger 2.0), JSON or YAML: every key of
//! `paths`, prefixed with the path of the document's servers (`servers[].url`, variables at
//! their defaults; Swagger's `basePath`). Real APIs publish theirs; a capture of a few calls
//! cannot know every parameter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::PathPattern;

/// Why a document gave no templates.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct OpenApiError {
    /// The document.
    pub path: PathBuf,
    /// What is wrong (with line and column when the parser knew them).
    pub message: String,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    openapi: Option<serde_json::Value>,
    #[serde(default)]
    swagger: Option<serde_json::Value>,
    #[serde(default)]
    servers: Vec<Server>,
    #[serde(default, rename = "basePath")]
    base_path: Option<String>,
    #[serde(default)]
    paths: Option<BTreeMap<String, IgnoredAny>>,
}

#[derive(Deserialize)]
struct Server {
    url: String,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
}

#[derive(Deserialize)]
struct Variable {
    #[serde(default)]
    default: Option<serde_json::Value>,
}

/// The path part of a server URL, variables at their defaults (`https://{region}.x.com/v1` →
/// `/v1`; `/api/v3` → `/api/v3`; none → empty).
fn server_path(s: &Server) -> String {
    let mut url = s.url.clone();
    for (name, v) in &s.variables {
        let value = match &v.default {
            Some(serde_json::Value::String(d)) => d.clone(),
            Some(other) => other.to_string(),
            None => continue,
        };
        url = url.replace(&format!("{{{name}}}"), &value);
    }
    let path = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("", |j| &url[i + 3 + j..]),
        None => url.as_str(),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.starts_with('/') { path.trim_end_matches('/').to_owned() } else { String::new() }
}

/// Reads the templates of the OpenAPI document at `path`.
pub fn templates_from_openapi(path: &Path) -> Result<Vec<PathPattern>, OpenApiError> {
    let err = |message: String| OpenApiError { path: path.to_owned(), message };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| err(format!("not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc: Doc = if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| err(format!("{}:{}: invalid OpenAPI JSON: {e}", e.line(), e.column())))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| err(format!("invalid OpenAPI YAML: {e}")))?
    };
    if doc.openapi.is_none() && doc.swagger.is_none() {
        return Err(
            err("not an OpenAPI document (no `openapi` or `swagger` version field)".into()),
        );
    }
    let paths = doc.paths.unwrap_or_default();
    if paths.is_empty() {
        return Err(err("the document has no `paths`".into()));
    }
    let mut prefixes: Vec<String> = doc.servers.iter().map(server_path).collect();
    if let Some(b) = doc.base_path.as_deref().filter(|b| b.starts_with('/')) {
        prefixes.push(b.trim_end_matches('/').to_owned());
    }
    if prefixes.is_empty() {
        prefixes.push(String::new());
    }
    prefixes.sort();
    prefixes.dedup();
    let mut out = Vec::new();
    for key in paths.keys() {
        if !key.starts_with('/') {
            // OpenAPI extensions (`x-…`) live beside the paths.
            continue;
        }
        for p in &prefixes {
            let text = format!("{p}{key}");
            out.push(PathPattern::parse(&text).map_err(|e| err(format!("path {key:?}: {e}")))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        (dir, p)
    }

    #[test]
    fn yaml_and_json_documents_with_server_paths() {
        let (_d, p) = write(
            "gmail.yaml",
            "openapi: 3.0.3\ninfo: {title: Gmail, version: v1}\nservers:\n  - url: https://gmail.googleapis.com/\npaths:\n  /gmail/v1/users/{userId}/messages/{id}:\n    get: {}\n  /gmail/v1/users/{userId}/messages:\n    get: {}\n",
        );
        let t: Vec<String> = templates_from_openapi(&p)
            .expect("yaml")
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        assert_eq!(
            t,
            ["/gmail/v1/users/{userId}/messages", "/gmail/v1/users/{userId}/messages/{id}"]
        );
        let (_d, p) = write(
            "petstore.json",
            r#"{"openapi":"3.1.0","servers":[{"url":"https://{env}.example.com/api/{v}","variables":{"env":{"default":"prod"},"v":{"default":"v3"}}}],"paths":{"/pets/{petId}":{"get":{}},"x-extra":{}}}"#,
        );
        let t = templates_from_openapi(&p).expect("json");
        assert_eq!(t[0].as_str(), "/api/v3/pets/{petId}");
        let (_d, p) =
            write("swagger.json", r#"{"swagger":"2.0","basePath":"/v2","paths":{"/pet/{id}":{}}}"#);
        assert_eq!(templates_from_openapi(&p).expect("swagger")[0].as_str(), "/v2/pet/{id}");
    }

    #[test]
    fn documents_that_are_not_openapi_say_why() {
        let (_d, p) = write("x.yaml", "name: not an api\n");
        assert!(
            templates_from_openapi(&p)
                .expect_err("no version")
                .to_string()
                .contains("not an OpenAPI")
        );
        let (_d, p) = write("x.json", r#"{"openapi":"3.0.0","paths":{}}"#);
        assert!(
            templates_from_openapi(&p).expect_err("no paths").to_string().contains("no `paths`")
        );
        let (_d, p) = write("x.json", r#"{"openapi": 3.0.0 "#);
        let e = templates_from_openapi(&p).expect_err("bad json").to_string();
        assert!(e.contains("x.json") && e.contains("1:"), "{e}");
        let (_d, p) = write("x.yaml", "openapi: 3.0.0\npaths: [unclosed\n");
        assert!(templates_from_openapi(&p).expect_err("bad yaml").to_string().contains("x.yaml"));
    }
}
