//! Message templates with `{variable}` placeholders (`{{` and `}}` write literal braces), per
//! tenant: the rendering rules, their SQL and their routes.

use super::store;
use crate::db::{now_ms, Db, DbError, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::http::{Auth, JsonBody, PathId};
use crate::ids::new_id;
use crate::messaging::{cost, MAX_BODY_CHARS};
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("template variable {0:?} has no value")]
    Missing(String),
    #[error("template has an unclosed '{{' at character {0}")]
    Unclosed(usize),
    #[error("template has an empty or invalid variable name at character {0}")]
    BadName(usize),
}

/// The variable names a template uses, in order of first use.
pub fn variables(template: &str) -> Result<Vec<String>, RenderError> {
    let mut names = Vec::new();
    render_with(template, |name| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        Some(String::new())
    })?;
    Ok(names)
}

/// Fills the placeholders from `vars`.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> Result<String, RenderError> {
    render_with(template, |name| vars.get(name).cloned())
}

fn render_with(
    template: &str,
    mut value: impl FnMut(&str) -> Option<String>,
) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len());
    let chars: Vec<(usize, char)> = template.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let next = chars.get(i + 1).map(|x| x.1);
        match c {
            '{' if next == Some('{') => {
                out.push('{');
                i += 2;
            }
            '}' if next == Some('}') => {
                out.push('}');
                i += 2;
            }
            '{' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| x.1 == '}')
                    .map(|p| i + 1 + p)
                    .ok_or(RenderError::Unclosed(pos))?;
                let name: String = chars[i + 1..end].iter().map(|x| x.1).collect();
                let name = name.trim();
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || "_.-".contains(c));
                if !valid {
                    return Err(RenderError::BadName(pos));
                }
                out.push_str(&value(name).ok_or_else(|| RenderError::Missing(name.to_string()))?);
                i = end + 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub body: String,
    pub variables: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A template by id or by name.
pub async fn find(db: &Db, tenant_id: &str, id_or_name: &str) -> DbResult<Option<Template>> {
    store::find_template(db, tenant_id, id_or_name).await
}

/// Creates the template `name`, or replaces the body of the one with that name (for loading
/// files). Checked as the API checks templates.
pub async fn put(app: &App, tenant_id: &str, name: &str, body: &str) -> ApiResult<Template> {
    check(name, body)?;
    let now = now_ms();
    match find(app.db(), tenant_id, name.trim()).await? {
        Some(t) => {
            store::update_template(app.db(), tenant_id, &t.id, &t.name, body, now).await?;
        }
        None => {
            store::insert_template(app.db(), tenant_id, &new_id("tpl"), name.trim(), body, now)
                .await
                .map_err(name_taken)?;
        }
    }
    find(app.db(), tenant_id, name.trim())
        .await?
        .ok_or_else(ApiError::internal)
}

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/templates", get(list).post(create))
        .route(
            "/v1/templates/{id}",
            get(fetch).patch(update).delete(remove),
        )
        .route("/v1/templates/{id}/preview", post(preview))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTemplate {
    name: String,
    body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchTemplate {
    name: Option<String>,
    body: Option<String>,
}

fn check(name: &str, body: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(ApiError::unprocessable(
            "invalid_template",
            "a template needs a name of 1 to 100 characters",
        ));
    }
    if body.is_empty() || body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::unprocessable(
            "invalid_template",
            "a template body has 1 to 1600 characters",
        ));
    }
    variables(body).map_err(|e| ApiError::unprocessable("invalid_template", e.to_string()))?;
    Ok(())
}

fn name_taken(e: DbError) -> ApiError {
    if e.is_unique_violation() {
        ApiError::conflict("template_exists", "a template with this name exists")
    } else {
        e.into()
    }
}

async fn create(
    State(app): State<App>,
    auth: Auth,
    JsonBody(req): JsonBody<NewTemplate>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    check(&req.name, &req.body)?;
    let id = new_id("tpl");
    let now = now_ms();
    store::insert_template(
        app.db(),
        &auth.tenant.id,
        &id,
        req.name.trim(),
        &req.body,
        now,
    )
    .await
    .map_err(name_taken)?;
    let t = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(t)))
}

async fn fetch(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
) -> ApiResult<Json<Template>> {
    find(app.db(), &auth.tenant.id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("template"))
}

async fn list(State(app): State<App>, auth: Auth) -> ApiResult<Json<Value>> {
    let data = store::templates(app.db(), &auth.tenant.id).await?;
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}

async fn update(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
    JsonBody(req): JsonBody<PatchTemplate>,
) -> ApiResult<Json<Template>> {
    let t = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    let name = req.name.unwrap_or(t.name);
    let body = req.body.unwrap_or(t.body);
    check(&name, &body)?;
    store::update_template(
        app.db(),
        &auth.tenant.id,
        &t.id,
        name.trim(),
        &body,
        now_ms(),
    )
    .await
    .map_err(name_taken)?;
    fetch(State(app), auth, PathId(t.id)).await
}

async fn remove(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<StatusCode> {
    let t = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    store::delete_template(app.db(), &auth.tenant.id, &t.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Preview {
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// Renders a template without sending: the text, its encoding, segments and price estimate.
async fn preview(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
    JsonBody(req): JsonBody<Preview>,
) -> ApiResult<Json<Value>> {
    let t = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    let body = render(&t.body, &req.variables)
        .map_err(|e| ApiError::unprocessable("missing_variable", e.to_string()))?;
    let (seg, price) = cost(&body, 0);
    Ok(Json(json!({
        "body": body,
        "encoding": seg.encoding.as_str(),
        "segments": seg.count,
        "price_estimate": price,
        "price_currency": "USD",
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_and_reports_missing() {
        let t = "Hi {name}, your code is {code}. {{literal}}";
        assert_eq!(
            render(t, &vars(&[("name", "Ana"), ("code", "42")])).unwrap(),
            "Hi Ana, your code is 42. {literal}"
        );
        assert_eq!(
            render(t, &vars(&[("name", "Ana")])),
            Err(RenderError::Missing("code".into()))
        );
        assert_eq!(variables(t).unwrap(), ["name", "code"]);
        assert_eq!(render("{oops", &vars(&[])), Err(RenderError::Unclosed(0)));
        assert_eq!(render("{}", &vars(&[])), Err(RenderError::BadName(0)));
        assert_eq!(render("é {x}", &vars(&[("x", "<&>")])).unwrap(), "é <&>");
    }
}
