//! The dashboard in a real browser (Debian's Chromium, headless, through chromedriver),
//! against the real server with the twin as Twilio.

use crate::harness::{Backend, TestApp, HANDSET};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::time::Duration;

/// A chromedriver on a free port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium chromium-driver)");
    // Held at once, so that it is stopped whatever happens next.
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/status", d.url)).await.is_ok() {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start");
}

async fn browser(d: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let mut opts = json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]});
    if std::path::Path::new("/usr/bin/chromium").exists() {
        opts["binary"] = json!("/usr/bin/chromium");
    }
    caps.insert("goog:chromeOptions".into(), opts);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a browser session")
}

/// Waits until the element's text contains `want`.
async fn text_of(c: &Client, id: &str, want: &str) -> String {
    for _ in 0..300 {
        if let Ok(e) = c.find(Locator::Id(id)).await {
            let t = e.text().await.unwrap_or_default();
            if t.contains(want) {
                return t;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = match c.find(Locator::Id(id)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    panic!("#{id} never showed {want:?} (it shows {shown:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(browser_tests), ignore = "chromedriver is not installed")]
async fn the_dashboard_verifies_a_contact() {
    let t = TestApp::start(Backend::Sqlite).await;
    // A conversation with the contact.
    let m = t
        .send(json!({"to": HANDSET, "body": "Welcome to the market"}))
        .await;
    t.wait_status(m["id"].as_str().unwrap(), "delivered").await;
    let d = driver().await;
    let c = browser(&d).await;
    c.goto(&format!("{}/#key={}", t.url, t.api_key))
        .await
        .unwrap();
    let verify = c
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("li.conv button"))
        .await
        .expect("the contact's Verify button");
    verify.click().await.unwrap();
    text_of(&c, "verifyresult", "code sent").await;
    let code = t
        .eventually("the code on the handset", async || {
            t.deliveries_to(HANDSET).into_iter().find_map(|d| {
                d.body
                    .strip_prefix("Your acme code is ")
                    .map(str::to_string)
            })
        })
        .await;
    c.find(Locator::Id("verifycode"))
        .await
        .unwrap()
        .send_keys(&code)
        .await
        .unwrap();
    c.find(Locator::Id("verifycheck"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_of(&c, "verifyresult", &format!("verified: {HANDSET}")).await;
    // The history shows the text with its code masked.
    let (_, msgs) = t.get("/v1/messages").await;
    assert_eq!(msgs["data"][0]["body"], "Your acme code is ******");
    c.close().await.unwrap();
}
