//! SQL for tenants, API keys and numbers.

use super::{Signer, Tenant, TwilioAccount};
use crate::crypto::{hash_api_key, new_api_key, MasterKey};
use crate::db::{now_ms, opt_str, Db, DbResult, Row};
use crate::ids::new_id;
use sqlx::any::AnyRow;

fn tenant(r: &AnyRow) -> Tenant {
    Tenant {
        id: r.get("id"),
        name: r.get("name"),
        account_sid: opt_str(r, "account_sid"),
        default_region: r.get("default_region"),
        created_at: r.get("created_at"),
    }
}

/// Creates a tenant and its first API key (`api_key` if given, else a new one). Returns the key
/// in clear: the only time it is seen.
pub async fn create_tenant(
    db: &Db,
    name: &str,
    region: &str,
    api_key: Option<&str>,
) -> DbResult<(Tenant, String)> {
    let mut tx = db.begin().await?;
    let t = Tenant {
        id: new_id("ten"),
        name: name.to_string(),
        account_sid: None,
        default_region: region.to_string(),
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO tenants (id, name, default_region, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.default_region)
    .bind(t.created_at)
    .execute(&mut *tx)
    .await?;
    let key = api_key.map(str::to_string).unwrap_or_else(new_api_key);
    insert_key(&mut tx, &t.id, &key).await?;
    tx.commit().await?;
    Ok((t, key))
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant_id: &str,
    key: &str,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(new_id("key"))
    .bind(tenant_id)
    .bind(hash_api_key(key))
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn add_api_key(db: &Db, tenant_id: &str, key: Option<&str>) -> DbResult<String> {
    let key = key.map(str::to_string).unwrap_or_else(new_api_key);
    let mut tx = db.begin().await?;
    insert_key(&mut tx, tenant_id, &key).await?;
    tx.commit().await?;
    Ok(key)
}

/// The tenant an API key acts for.
pub async fn tenant_for_key(db: &Db, key: &str) -> DbResult<Option<Tenant>> {
    let row = sqlx::query(
        "SELECT t.id, t.name, t.account_sid, t.default_region, t.created_at FROM api_keys k \
         JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
    )
    .bind(hash_api_key(key))
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(tenant))
}

pub async fn get_tenant(db: &Db, id: &str) -> DbResult<Option<Tenant>> {
    let row = sqlx::query(
        "SELECT id, name, account_sid, default_region, created_at FROM tenants WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(tenant))
}

/// A tenant by id, or else by name.
pub async fn find_tenant(db: &Db, id_or_name: &str) -> DbResult<Option<Tenant>> {
    match get_tenant(db, id_or_name).await? {
        Some(t) => Ok(Some(t)),
        None => find_tenant_by_name(db, id_or_name).await,
    }
}

/// Every tenant with how many numbers it has, oldest first.
pub async fn list_tenants(db: &Db) -> DbResult<Vec<(Tenant, i64)>> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.account_sid, t.default_region, t.created_at, \
         (SELECT COUNT(*) FROM numbers n WHERE n.tenant_id = t.id) AS numbers \
         FROM tenants t ORDER BY t.created_at, t.id",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(|r| (tenant(r), r.get("numbers"))).collect())
}

/// Makes a new API key for the tenant and, unless `keep_old`, revokes every earlier one in the
/// same transaction. Returns the new key in clear: the only time it is seen.
pub async fn rotate_api_key(db: &Db, tenant_id: &str, keep_old: bool) -> DbResult<String> {
    let key = new_api_key();
    let mut tx = db.begin().await?;
    if !keep_old {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    }
    insert_key(&mut tx, tenant_id, &key).await?;
    tx.commit().await?;
    Ok(key)
}

pub async fn find_tenant_by_name(db: &Db, name: &str) -> DbResult<Option<Tenant>> {
    let row = sqlx::query("SELECT id, name, account_sid, default_region, created_at FROM tenants WHERE name = $1 ORDER BY created_at LIMIT 1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(tenant))
}

/// Attaches Twilio credentials; the auth token is sealed with the master key.
pub async fn set_twilio(
    db: &Db,
    key: &MasterKey,
    tenant_id: &str,
    account_sid: &str,
    auth_token: &str,
) -> DbResult<()> {
    sqlx::query("UPDATE tenants SET account_sid = $1, auth_token_enc = $2 WHERE id = $3")
        .bind(account_sid)
        .bind(key.seal(auth_token))
        .bind(tenant_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The tenant's Twilio credentials, opened. None when not attached or not readable.
pub async fn twilio_account(
    db: &Db,
    key: &MasterKey,
    tenant_id: &str,
) -> DbResult<Option<TwilioAccount>> {
    let row = sqlx::query("SELECT account_sid, auth_token_enc FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (Some(sid), Some(sealed)) = (
        opt_str(&row, "account_sid"),
        opt_str(&row, "auth_token_enc"),
    ) else {
        return Ok(None);
    };
    match key.open(&sealed) {
        Ok(token) => Ok(Some(TwilioAccount {
            account_sid: sid,
            auth_token: token,
        })),
        Err(e) => {
            tracing::error!(tenant_id, error = %e, "cannot open the tenant's Twilio auth token");
            Ok(None)
        }
    }
}

/// The tenants using a Twilio account, with its auth token opened (for webhook signatures).
pub async fn signers(db: &Db, key: &MasterKey, account_sid: &str) -> DbResult<Vec<Signer>> {
    let rows = sqlx::query(
        "SELECT id, auth_token_enc FROM tenants WHERE account_sid = $1 AND auth_token_enc IS NOT NULL ORDER BY id",
    )
    .bind(account_sid)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let tenant_id: String = r.get("id");
            match key.open(&r.get::<String, _>("auth_token_enc")) {
                Ok(auth_token) => Some(Signer {
                    tenant_id,
                    auth_token,
                }),
                Err(e) => {
                    tracing::error!(%tenant_id, error = %e, "cannot open the tenant's Twilio auth token");
                    None
                }
            }
        })
        .collect())
}
