//! Starting the product: `serve` (production, configured from the environment) and `dev`
//! (embedded defaults: SQLite, local media and the Twilio twin mounted at `/sim`).

use crate::config::{config_error, parse_public_url, Config, ConfigError, Role, WorkerSettings};
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::storage::Storage;
use crate::tenants::store as tenants;
use crate::App;
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;
use twilio::BaseUrl;

/// The tenant a single-tenant deployment configures through the environment.
#[derive(Clone)]
pub struct DefaultTenant {
    pub name: String,
    pub api_key: String,
    pub account_sid: String,
    pub auth_token: String,
    pub numbers: Vec<String>,
    pub segments_per_second: Option<f64>,
    /// A Twilio Verify Service (`TWILIO_VERIFY_SERVICE_SID`): verifications go through Twilio
    /// Verify instead of the built-in engine.
    pub verify_service_sid: Option<String>,
}

impl std::fmt::Debug for DefaultTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultTenant")
            .field("name", &self.name)
            .field("account_sid", &self.account_sid)
            .field("numbers", &self.numbers)
            .finish_non_exhaustive()
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Reads `serve`'s configuration from the environment, naming the key that is wrong.
pub fn config_from_env(role: Role) -> Result<(Config, Option<DefaultTenant>), ConfigError> {
    let database_url = env("DATABASE_URL")
        .ok_or_else(|| config_error("DATABASE_URL", "required (sqlite:PATH or postgres://…)"))?;
    let public_url = parse_public_url(
        "SWITCHBOARD_PUBLIC_URL",
        &env("SWITCHBOARD_PUBLIC_URL").ok_or_else(|| {
            config_error(
                "SWITCHBOARD_PUBLIC_URL",
                "required: the URL Twilio reaches this server at",
            )
        })?,
    )?;
    let master_key = MasterKey::parse(&env("SWITCHBOARD_MASTER_KEY").ok_or_else(|| {
        config_error(
            "SWITCHBOARD_MASTER_KEY",
            "required: 32 bytes as 64 hex digits or base64",
        )
    })?)
    .map_err(|e| config_error("SWITCHBOARD_MASTER_KEY", e.to_string()))?;
    let twilio_base =
        BaseUrl::new(env("SWITCHBOARD_TWILIO_BASE").unwrap_or_else(|| BaseUrl::TWILIO.to_string()))
            .map_err(|e| config_error("SWITCHBOARD_TWILIO_BASE", e.to_string()))?;
    let storage =
        env("SWITCHBOARD_STORAGE_URL").unwrap_or_else(|| "file://./switchboard-media".into());
    let storage_dir = match storage.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if !storage.contains("://") => PathBuf::from(&storage),
        None => {
            return Err(config_error(
                "SWITCHBOARD_STORAGE_URL",
                "only file:// storage is supported by this build",
            ))
        }
    };
    let default_sps = match env("SWITCHBOARD_DEFAULT_SEGMENTS_PER_SECOND") {
        Some(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|r| (0.01..=1000.0).contains(r))
                .ok_or_else(|| {
                    config_error(
                        "SWITCHBOARD_DEFAULT_SEGMENTS_PER_SECOND",
                        "a number from 0.01 to 1000",
                    )
                })?,
        ),
        None => None,
    };
    let twilio_timeout = match env("SWITCHBOARD_TWILIO_TIMEOUT_SECS") {
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|s| (1..=60).contains(s))
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| {
                    config_error(
                        "SWITCHBOARD_TWILIO_TIMEOUT_SECS",
                        "whole seconds from 1 to 60",
                    )
                })?,
        ),
        None => None,
    };
    let shutdown_grace = match env("SWITCHBOARD_SHUTDOWN_SECS") {
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|s| (1..=600).contains(s))
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| {
                    config_error("SWITCHBOARD_SHUTDOWN_SECS", "whole seconds from 1 to 600")
                })?,
        ),
        None => None,
    };
    let sqlite_sync = match env("SWITCHBOARD_SQLITE_SYNC") {
        Some(v) => v
            .parse()
            .map_err(|e: String| config_error("SWITCHBOARD_SQLITE_SYNC", e))?,
        None => Default::default(),
    };
    let mut workers = WorkerSettings::default();
    if let Some(v) = env("SWITCHBOARD_STATUS_POLL_SECS") {
        workers.status_poll_after = v
            .parse::<u64>()
            .ok()
            .filter(|s| *s >= 1)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| {
                config_error("SWITCHBOARD_STATUS_POLL_SECS", "whole seconds, at least 1")
            })?;
    }
    let stt = match env("SWITCHBOARD_STT_URL") {
        Some(u) => Some(crate::config::Stt {
            url: parse_public_url("SWITCHBOARD_STT_URL", &u)?,
            api_key: env("SWITCHBOARD_STT_API_KEY"),
            model: env("SWITCHBOARD_STT_MODEL").unwrap_or_else(|| "whisper-1".into()),
        }),
        None => None,
    };
    let delete_recordings_at_twilio =
        match env("SWITCHBOARD_DELETE_RECORDINGS_AT_TWILIO").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => {
                return Err(config_error(
                    "SWITCHBOARD_DELETE_RECORDINGS_AT_TWILIO",
                    "true or false",
                ))
            }
        };
    let mut config = Config::new(
        database_url,
        public_url,
        master_key,
        twilio_base,
        storage_dir,
    );
    config.sqlite_sync = sqlite_sync;
    config.role = role;
    config.workers = workers;
    if let Some(region) = env("SWITCHBOARD_DEFAULT_REGION") {
        config.default_region = region;
    }
    if let Some(sps) = default_sps {
        config.default_segments_per_second = sps;
    }
    if let Some(t) = twilio_timeout {
        config.twilio_timeout = t;
    }
    if let Some(g) = shutdown_grace {
        config.shutdown_grace = g;
    }
    config.stt = stt;
    config.delete_recordings_at_twilio = delete_recordings_at_twilio;
    config.limits = crate::config::Limits::from_env(env)?;
    config.allow_private_urls = match env("SWITCHBOARD_ALLOW_PRIVATE_URLS").as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(config_error(
                "SWITCHBOARD_ALLOW_PRIVATE_URLS",
                "true or false",
            ))
        }
    };
    let default_tenant = match (env("TWILIO_ACCOUNT_SID"), env("TWILIO_AUTH_TOKEN")) {
        (Some(sid), Some(token)) => {
            let api_key = env("SWITCHBOARD_API_KEY").ok_or_else(|| {
                config_error(
                    "SWITCHBOARD_API_KEY",
                    "required with TWILIO_ACCOUNT_SID: the key apps use",
                )
            })?;
            if api_key.len() < 16 {
                return Err(config_error(
                    "SWITCHBOARD_API_KEY",
                    "use at least 16 characters",
                ));
            }
            if !twilio::sid::is_sid(&sid, "AC") {
                return Err(config_error(
                    "TWILIO_ACCOUNT_SID",
                    "AC followed by 32 hex digits",
                ));
            }
            Some(DefaultTenant {
                name: "default".into(),
                api_key,
                account_sid: sid,
                auth_token: token,
                numbers: env("TWILIO_PHONE_NUMBER")
                    .map(|v| {
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                segments_per_second: None,
                verify_service_sid: match env("TWILIO_VERIFY_SERVICE_SID") {
                    Some(v) if twilio::sid::is_sid(&v, "VA") => Some(v),
                    Some(_) => {
                        return Err(config_error(
                            "TWILIO_VERIFY_SERVICE_SID",
                            "VA followed by 32 hex digits",
                        ))
                    }
                    None => None,
                },
            })
        }
        (Some(_), None) => {
            return Err(config_error(
                "TWILIO_AUTH_TOKEN",
                "required with TWILIO_ACCOUNT_SID",
            ))
        }
        (None, Some(_)) => {
            return Err(config_error(
                "TWILIO_ACCOUNT_SID",
                "required with TWILIO_AUTH_TOKEN",
            ))
        }
        (None, None) => None,
    };
    Ok((config, default_tenant))
}

/// Connects, migrates and builds the application.
pub async fn build(config: Config) -> Result<App, String> {
    let db = Db::connect_with(&config.database_url, config.sqlite_sync)
        .await
        .map_err(|e| format!("database: {e}"))?;
    db.migrate().await.map_err(|e| format!("migration: {e}"))?;
    let storage = Storage::local(&config.storage_dir)
        .map_err(|e| format!("storage {}: {e}", config.storage_dir.display()))?;
    App::new(db, config, storage)
}

/// Makes sure the environment's tenant exists with its key, credentials and numbers, and
/// points the numbers' webhooks here. Twilio being unreachable is logged, not fatal.
pub async fn ensure_tenant(app: &App, t: &DefaultTenant) -> Result<String, String> {
    let db = app.db();
    let tenant = match tenants::find_tenant_by_name(db, &t.name)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(existing) => {
            if tenants::tenant_for_key(db, &t.api_key)
                .await
                .map_err(|e| e.to_string())?
                .map(|x| x.id)
                != Some(existing.id.clone())
            {
                tenants::add_api_key(db, &existing.id, Some(&t.api_key))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            existing
        }
        None => {
            tenants::create_tenant(db, &t.name, &app.config().default_region, Some(&t.api_key))
                .await
                .map_err(|e| e.to_string())?
                .0
        }
    };
    tenants::set_twilio(
        db,
        &app.config().master_key,
        &tenant.id,
        &t.account_sid,
        &t.auth_token,
    )
    .await
    .map_err(|e| e.to_string())?;
    if let Some(service) = &t.verify_service_sid {
        let mut s = crate::verify::store::settings(db, &tenant.id)
            .await
            .map_err(|e| e.to_string())?;
        s.engine = crate::verify::Engine::Twilio;
        s.twilio_service_sid = Some(service.clone());
        crate::verify::store::save_settings(db, &tenant.id, &s, app.clock().now_ms())
            .await
            .map_err(|e| e.to_string())?;
    }
    let client = app.twilio(&tenant.id).await.map_err(|e| e.message)?;
    for raw in &t.numbers {
        let phone = crate::phone::E164::parse(raw, &app.config().default_region)
            .map_err(|e| format!("TWILIO_PHONE_NUMBER: {e}"))?;
        let sid = match crate::numbers::setup::point_webhooks(app, &client, phone.as_str()).await {
            Ok(sid) => Some(sid),
            Err(e) => {
                tracing::warn!(number = %phone, error = %e, "could not point the number's webhooks here");
                None
            }
        };
        let rate = t
            .segments_per_second
            .unwrap_or(app.config().default_segments_per_second);
        match crate::numbers::store::number_by_phone(db, phone.as_str())
            .await
            .map_err(|e| e.to_string())?
        {
            Some(n) if n.tenant_id == tenant.id => {
                crate::numbers::store::update_number(
                    db,
                    &tenant.id,
                    &n.id,
                    crate::numbers::store::NumberChange {
                        segments_per_second: t.segments_per_second,
                        twilio_sid: sid.as_deref(),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            Some(_) => return Err(format!("{phone} belongs to another tenant")),
            None => {
                crate::numbers::store::add_number(
                    db,
                    &tenant.id,
                    phone.as_str(),
                    rate,
                    sid.as_deref(),
                )
                .await
                .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(tenant.id)
}

/// `switchboard serve`.
pub async fn serve(
    listener: Option<TcpListener>,
    config: Config,
    default_tenant: Option<DefaultTenant>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let app = build(config).await?;
    if let Some(t) = &default_tenant {
        ensure_tenant(&app, t).await?;
    }
    app.run(listener, None, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// `dev`'s configuration: everything in `data_dir`, the twin under `url`.
pub fn dev_config(data_dir: &Path, url: &str, master_key: MasterKey) -> Config {
    let mut c = Config::new(
        format!("sqlite:{}", data_dir.join("switchboard.db").display()),
        url.to_string(),
        master_key,
        BaseUrl::new(format!("{url}/sim/{{product}}")).expect("a valid template"),
        data_dir.join("media"),
    );
    c.default_segments_per_second = 10.0;
    // Apps under development run on the same machine.
    c.allow_private_urls = true;
    c
}

/// The configuration of an administrative command (`tenant`, `flow`): `dev`'s data directory
/// when one is named (or when `DATABASE_URL` is unset and `.switchboard` exists), else the
/// environment as `serve` reads it.
pub fn admin_config(data_dir: Option<PathBuf>) -> Result<Config, String> {
    let data_dir = data_dir.or_else(|| {
        let default = PathBuf::from(DEFAULT_DATA_DIR);
        (env("DATABASE_URL").is_none() && default.join("master.key").exists()).then_some(default)
    });
    let Some(dir) = data_dir else {
        return config_from_env(Role::Api)
            .map(|(c, _)| c)
            .map_err(|e| e.to_string());
    };
    let key_file = dir.join("master.key");
    let master = std::fs::read_to_string(&key_file).map_err(|_| {
        format!(
            "{} has no dev data (no master.key): run `switchboard dev --data-dir {}` first",
            dir.display(),
            dir.display()
        )
    })?;
    let master = MasterKey::parse(&master).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let url = std::fs::read_to_string(dir.join("dev-url"))
        .map(|u| u.trim().to_string())
        .unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    Ok(dev_config(&dir, &url, master))
}

/// Where `dev` keeps its data unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = ".switchboard";

/// What `dev` set up, for printing (and for tests).
#[derive(Debug, Clone)]
pub struct DevInfo {
    pub url: String,
    pub api_key: String,
    pub numbers: Vec<String>,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub data_dir: PathBuf,
}

pub const DEV_NUMBERS: [&str; 3] = ["+14155550100", "+14155550101", "+14155550102"];

fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => {
            keep_private(path)?;
            Ok(s.trim().to_string())
        }
        _ => {
            let v = make();
            write_secret(path, &v)?;
            Ok(v)
        }
    }
}

/// Writes a secret readable by its owner only, from the moment the file exists.
fn write_secret(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(value.as_bytes())?;
    keep_private(path)
}

/// Owner-only permissions (a file made by an earlier version may have had wider ones).
fn keep_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// `switchboard dev`: everything on embedded defaults in `data_dir`, the twin at `/sim`.
pub async fn dev(
    listener: TcpListener,
    data_dir: PathBuf,
    api_key: Option<String>,
    on_ready: impl FnOnce(&DevInfo),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    std::fs::create_dir_all(&data_dir)
        .and_then(|_| keep_private(&data_dir))
        .map_err(|e| format!("--data-dir {}: {e}", data_dir.display()))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = format!("http://{addr}");
    let master = read_or_create(&data_dir.join("master.key"), || {
        MasterKey::generate().to_hex()
    })
    .map_err(|e| e.to_string())?;
    let api_key = match api_key {
        Some(k) if k.len() < 16 => return Err("--api-key: use at least 16 characters".into()),
        Some(k) => {
            write_secret(&data_dir.join("dev-api-key"), &k).map_err(|e| e.to_string())?;
            k
        }
        None => read_or_create(&data_dir.join("dev-api-key"), crate::crypto::new_api_key)
            .map_err(|e| e.to_string())?,
    };
    let sim = sim::Sim::new(format!("{url}/sim"));
    sim.set_delays(sim::Delays {
        sending_ms: 300,
        sent_ms: 500,
        delivered_ms: 800,
    });
    let (account_sid, auth_token) = sim.create_account(None, None).map_err(|e| e.0.message)?;
    for n in DEV_NUMBERS {
        sim.add_number(&account_sid, n, &Default::default())
            .map_err(|e| e.0.message)?;
    }
    std::fs::write(data_dir.join("dev-url"), &url).map_err(|e| e.to_string())?;
    let master_key = MasterKey::parse(&master)
        .map_err(|e| format!("{}: {e}", data_dir.join("master.key").display()))?;
    let config = dev_config(&data_dir, &url, master_key);
    let app = build(config).await?;
    let extra = axum::Router::new().nest("/sim", sim.router());
    // The server must answer the twin's API before the numbers can be configured through it.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    // Healthy only once the dev tenant and its numbers exist.
    app.hold_readiness();
    let runner = tokio::spawn(app.clone().run(Some(listener), Some(extra), async move {
        let _ = ready_rx.await;
    }));
    let tenant = DefaultTenant {
        name: "dev".into(),
        api_key: api_key.clone(),
        account_sid: account_sid.clone(),
        auth_token,
        numbers: DEV_NUMBERS.iter().map(|s| s.to_string()).collect(),
        segments_per_second: Some(10.0),
        verify_service_sid: None,
    };
    let setup = ensure_tenant(&app, &tenant).await;
    if let Err(e) = setup {
        let _ = ready_tx.send(());
        let _ = runner.await;
        return Err(e);
    }
    app.mark_ready();
    on_ready(&DevInfo {
        url,
        api_key,
        numbers: tenant.numbers.clone(),
        twilio_auth_token: tenant.auth_token.clone(),
        twilio_account_sid: account_sid,
        data_dir,
    });
    shutdown.await;
    let _ = ready_tx.send(());
    runner
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
