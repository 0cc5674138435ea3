//! A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol: open a page,
//! evaluate JavaScript in it, read its DOM. For the dashboard's browser test; the page is never
//! reloaded by the driver, so what changes on it changed by itself.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The browser binary: `$CHROMIUM`, else `chromium` on the path.
pub fn binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// A headless Chromium with one page open; killed on drop.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium on `url` and attaches to its page.
    pub async fn open(url: &str) -> anyhow::Result<Browser> {
        let port = crate::free_port();
        let profile = std::env::temp_dir().join(crate::unique("chromium-profile"));
        let child = Command::new(binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--window-size=1280,900",
                &format!("--remote-debugging-port={port}"),
                &format!("--user-data-dir={}", profile.display()),
                url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary()))?;
        let mut browser = Browser {
            child,
            profile,
            ws: connect_page(port, url).await?,
            next_id: 0,
        };
        browser.wait_loaded(url).await?;
        Ok(browser)
    }

    /// Evaluates `expression` in the page and answers its value.
    pub async fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let call = json!({"id": id, "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true}});
        self.ws.send(Message::text(call.to_string())).await?;
        while let Some(msg) = self.ws.next().await {
            let Message::Text(text) = msg? else { continue };
            let answer: Value = serde_json::from_str(&text)?;
            if answer["id"] != id {
                continue;
            }
            if let Some(ex) = answer["result"].get("exceptionDetails") {
                bail!("{expression} threw: {ex}");
            }
            return Ok(answer["result"]["result"]["value"].clone());
        }
        bail!("the browser closed the connection")
    }

    /// The page's visible text.
    pub async fn text(&mut self) -> anyhow::Result<String> {
        let v = self
            .eval("document.body ? document.body.innerText : ''")
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Waits until the document of `url` has loaded. DevTools lists the page with its URL as soon
    /// as the navigation starts, while the initial empty document (also "complete") is still the
    /// one JavaScript runs in: what is set in that one is gone once `url` replaces it.
    async fn wait_loaded(&mut self, url: &str) -> anyhow::Result<()> {
        let loaded = format!(
            "location.href.startsWith({}) && document.readyState === 'complete'",
            serde_json::to_string(url)?
        );
        for _ in 0..200 {
            if self.eval(&loaded).await? == true {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the page did not finish loading")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Waits for DevTools on `port` to list the page showing `url`, and connects to it.
async fn connect_page(
    port: u16,
    url: &str,
) -> anyhow::Result<WebSocketStream<MaybeTlsStream<TcpStream>>> {
    let list = format!("http://127.0.0.1:{port}/json/list");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(&list).send().await {
            if let Ok(pages) = r.json::<Vec<Value>>().await {
                let page = pages.iter().find(|p| {
                    p["type"] == "page" && p["url"].as_str().is_some_and(|u| u.starts_with(url))
                });
                if let Some(ws) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                    let (stream, _) = tokio_tungstenite::connect_async(ws).await?;
                    return Ok(stream);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("chromium's DevTools on port {port} never listed {url}")
}
