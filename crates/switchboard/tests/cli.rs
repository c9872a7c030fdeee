//! The command line as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn switchboard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

#[test]
fn signature_check_says_valid_or_invalid_and_shows_what_was_signed() {
    let params = [
        ("From", "+14155550199"),
        ("Body", "hi & bye"),
        ("Digits", ""),
    ];
    let url = "https://example.com/twilio/messaging?x=1";
    let sig = twilio::signature::sign("secret", url, &params);
    let run = |url: &str, token: &str| {
        let mut cmd = switchboard();
        cmd.args([
            "signature",
            "check",
            "--url",
            url,
            "--token",
            token,
            "--signature",
            &sig,
        ]);
        for (k, v) in params {
            cmd.arg("-d").arg(format!("{k}={v}"));
        }
        cmd.output().unwrap()
    };
    let ok = run(url, "secret");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(out.starts_with("valid\n"));
    assert!(out.contains(
        "signed string: https://example.com/twilio/messaging?x=1Bodyhi & byeDigitsFrom+14155550199"
    ));
    // Behind a proxy on port 8443 the port is stripped and it still validates.
    assert_eq!(
        run("https://example.com:8443/twilio/messaging?x=1", "secret")
            .status
            .code(),
        Some(0)
    );
    let bad = run("http://example.com/twilio/messaging?x=1", "secret");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1));
    assert!(out.starts_with("invalid\n"));
    assert!(out.contains("expected signature: "));
    assert_eq!(run(url, "other").status.code(), Some(1));
}

#[test]
fn signature_check_with_a_json_body() {
    let dir = std::env::temp_dir().join(format!("sb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = dir.join("body.json");
    std::fs::write(&body, br#"{"property": "value", "boolean": true}"#).unwrap();
    let (url, sig) = twilio::signature::sign_json(
        "tok",
        "https://example.com/hook",
        &std::fs::read(&body).unwrap(),
    );
    let out = switchboard()
        .args([
            "signature",
            "check",
            "--url",
            &url,
            "--token",
            "tok",
            "--signature",
            &sig,
            "--body",
        ])
        .arg(&body)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(&body, b"{}").unwrap();
    let out = switchboard()
        .args([
            "signature",
            "check",
            "--url",
            &url,
            "--token",
            "tok",
            "--signature",
            &sig,
            "--body",
        ])
        .arg(&body)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("does NOT match bodySHA256"));
}

#[test]
fn bad_cli_input_is_a_clear_error_not_a_panic() {
    let out = switchboard()
        .args([
            "signature",
            "check",
            "--url",
            "u",
            "--token",
            "t",
            "--signature",
            "s",
            "-d",
            "novalue",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY=VALUE"));
    let out = switchboard()
        .args([
            "signature",
            "check",
            "--url",
            "u",
            "--token",
            "t",
            "--signature",
            "s",
            "--body",
            "/nonexistent/file",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read --body"));
    let out = switchboard()
        .args(["sim", "--port", "0", "--number", "12345"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--number 12345"));
    let out = switchboard()
        .args(["sim", "--port", "0", "--account-sid", "ACnope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn sim_command_serves_the_twin_and_prints_its_credentials() {
    let mut child = switchboard()
        .args([
            "sim",
            "--port",
            "0",
            "--auth-token",
            "tok123",
            "--number",
            "+14155550100",
        ])
        .env_remove("TWILIO_ACCOUNT_SID")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.rsplit(' ').next().unwrap().to_string();
    let sid_line = lines.next().unwrap().unwrap();
    let sid = sid_line.rsplit(' ').next().unwrap().to_string();
    assert!(twilio::sid::is_sid(&sid, "AC"), "{sid_line}");
    let token_line = lines.next().unwrap().unwrap();
    assert!(token_line.ends_with("tok123"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let numbers = rt.block_on(async {
        let client = twilio::Client::new(
            twilio::Credentials::AuthToken {
                account_sid: sid.clone(),
                auth_token: "tok123".into(),
            },
            twilio::BaseUrl::new(format!("{base}/{{product}}")).unwrap(),
        )
        .unwrap();
        client.list_numbers(&Default::default()).await.unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(numbers.items.len(), 1);
    assert_eq!(numbers.items[0].phone_number, "+14155550100");
}

#[test]
fn migrate_and_tenant_create_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("sb-cli-tenant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite:{}", dir.join("t.db").display());
    let run = |args: &[&str]| {
        switchboard()
            .args(args)
            .env("DATABASE_URL", &db)
            .env("SWITCHBOARD_PUBLIC_URL", "https://sms.example.com")
            .env(
                "SWITCHBOARD_MASTER_KEY",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            )
            .env(
                "SWITCHBOARD_STORAGE_URL",
                format!("file://{}", dir.join("media").display()),
            )
            .env_remove("TWILIO_ACCOUNT_SID")
            .env_remove("TWILIO_AUTH_TOKEN")
            .output()
            .unwrap()
    };
    let out = run(&["migrate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrated"));
    // Twice is fine.
    assert_eq!(run(&["migrate"]).status.code(), Some(0));
    let out = run(&["tenant", "create", "acme"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let tenant = text
        .lines()
        .find_map(|l| l.strip_prefix("tenant:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(tenant.starts_with("ten_"));
    assert!(text.contains("API key: sk_"));
    let out = run(&[
        "tenant",
        "twilio",
        &tenant,
        "--account-sid",
        "AC0123456789abcdef0123456789abcdef",
        "--auth-token",
        "s3cret-token",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret-token"));
    // The token is sealed at rest.
    let raw = std::fs::read(dir.join("t.db")).unwrap();
    let wal = std::fs::read(dir.join("t.db-wal")).unwrap_or_default();
    let needle = b"s3cret-token";
    assert!(
        !raw.windows(needle.len()).any(|w| w == needle)
            && !wal.windows(needle.len()).any(|w| w == needle)
    );
    let out = run(&[
        "tenant",
        "twilio",
        "ten_nope",
        "--account-sid",
        "AC0123456789abcdef0123456789abcdef",
        "--auth-token",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = switchboard()
        .args(["serve"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
    let out = switchboard()
        .args(["serve"])
        .env("DATABASE_URL", &db)
        .env("SWITCHBOARD_PUBLIC_URL", "ftp://x")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHBOARD_PUBLIC_URL"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Against `dev`'s data directory the administrative commands need nothing but `--data-dir`:
/// tenants by name, flows loaded with their templates, listings, and key rotation that the
/// running server honours.
#[test]
fn admin_commands_work_on_a_dev_data_directory() {
    let dir = std::env::temp_dir().join(format!("sb-cli-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_str().unwrap().to_string();
    let clean = |c: &mut Command| {
        for k in [
            "DATABASE_URL",
            "SWITCHBOARD_PUBLIC_URL",
            "SWITCHBOARD_MASTER_KEY",
            "SWITCHBOARD_API_KEY",
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "PORT",
        ] {
            c.env_remove(k);
        }
    };
    let mut dev = switchboard();
    dev.args(["dev", "--port", "0", "--data-dir", &data]);
    clean(&mut dev);
    let mut child = dev.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = String::new();
    let mut key = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("Switchboard is running at ") {
            url = u.trim().to_string();
        }
        if let Some(k) = line.trim().strip_prefix("API key:") {
            key = k.trim().to_string();
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    // The secrets dev keeps are its user's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for (name, mode) in [("", 0o700), ("dev-api-key", 0o600), ("master.key", 0o600)] {
            let path = std::path::Path::new(&data).join(name);
            let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode, "{} is {got:o}", path.display());
        }
    }
    let admin = |args: &[&str]| {
        let mut c = switchboard();
        c.args(args).args(["--data-dir", &data]);
        clean(&mut c);
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/farmers-market.json"
    );
    let loaded = admin(&[
        "flow",
        "load",
        example,
        "--tenant",
        "dev",
        "--number",
        "+14155550100",
    ]);
    assert!(
        loaded.contains("template \"todays-prices\" loaded"),
        "{loaded}"
    );
    assert!(admin(&["flow", "list", "--tenant", "dev"]).contains("farmers market"));
    let tenants = admin(&["tenant", "list"]);
    assert!(
        tenants.contains("  dev  ") && tenants.contains("3 number(s)"),
        "{tenants}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let status = |k: String| {
        let (http, url) = (http.clone(), url.clone());
        rt.block_on(async move {
            http.get(format!("{url}/v1/templates"))
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(status(key.clone()), 200);
    let rotated = admin(&["tenant", "rotate-key", "dev"]);
    let new_key = rotated
        .lines()
        .find_map(|l| l.strip_prefix("API key:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(status(new_key), 200);
    // The server caches keys briefly; the old one stops working within that time.
    let mut refused = false;
    for _ in 0..100 {
        if status(key.clone()) == 401 {
            refused = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(refused, "the rotated-out key is refused");
}
