//! The edge dashboard as a person sees it: a headless Chromium on the demo's dashboard URL,
//! waited on until the text of part of the page shows something (the test never reloads the page).

use std::time::{Duration, Instant};

use testkit::browser::Browser;

/// How long a change may take to show on the page (Consul, the templater and the page's poll).
pub const WITHIN: Duration = Duration::from_secs(30);

/// The selector of service `name`'s section.
pub fn service(name: &str) -> String {
    format!("section[data-service=\"{name}\"]")
}

/// The text of the first element matching `selector` ("" when none).
pub async fn text_of(browser: &mut Browser, selector: &str) -> String {
    let js = format!(
        "(function(){{var e=document.querySelector({});return e?e.innerText:'';}})()",
        serde_json::to_string(selector).expect("a string")
    );
    let v = browser.eval(&js).await.expect("evaluate in the page");
    v.as_str().unwrap_or_default().to_string()
}

/// Waits until the text of `selector` satisfies `holds`; answers it, or panics with the last.
pub async fn shows(
    browser: &mut Browser,
    selector: &str,
    what: &str,
    holds: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        let text = text_of(browser, selector).await;
        if holds(&text) {
            return text;
        }
        if Instant::now() >= deadline {
            panic!(
                "the dashboard never showed {what} within {WITHIN:?}; {selector} shows:\n{text}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
