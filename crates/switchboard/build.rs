//! The PostgreSQL half of the integration suite is built to run only where a server is
//! configured (or under CI, where a missing one must fail); elsewhere it is built as ignored,
//! so test runners report it as skipped rather than passed. The same goes for the browser
//! suite and Chromium's driver.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=SWITCHBOARD_TEST_DATABASE_URL");
    println!("cargo::rerun-if-env-changed=CI");
    let configured = std::env::var("SWITCHBOARD_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if configured || ci {
        println!("cargo::rustc-cfg=postgres_tests");
    }
    // The browser suite likewise: where Chromium's driver is installed, or under CI.
    println!("cargo::rustc-check-cfg=cfg(browser_tests)");
    println!("cargo::rerun-if-env-changed=PATH");
    let driver = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|p| p.join("chromedriver").is_file())
    });
    if driver || ci {
        println!("cargo::rustc-cfg=browser_tests");
    }
}
