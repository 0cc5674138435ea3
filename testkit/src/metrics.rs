//! Reading a daemon's `/metrics` the way scrapers do: both formats it serves, each checked by a
//! strict parser of that format, and single samples read from the sample lines only (never
//! `# HELP` text, which can contain a metric's name followed by anything).

use openmetrics_parser::{openmetrics, prometheus};

/// One scrape of `/metrics` in each format, both parsed strictly.
#[derive(Debug)]
pub struct Scrape {
    /// Prometheus text 0.0.4 (what a scraper without `accept` gets).
    pub text: String,
    /// OpenMetrics 1.0.0.
    pub openmetrics: String,
}

/// GETs `http://127.0.0.1:{port}/metrics` as a classic and as an OpenMetrics scraper; errs
/// when either answer is not a valid exposition of its format.
pub async fn scrape(port: u16) -> anyhow::Result<Scrape> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let client = reqwest::Client::new();
    let get = |accept: Option<&'static str>| {
        let mut req = client.get(&url);
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        async move { anyhow::Ok(req.send().await?.error_for_status()?.text().await?) }
    };
    let text = get(None).await?;
    let om = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let openmetrics = get(Some(om)).await?;
    prometheus::parse_prometheus(&text)
        .map_err(|e| anyhow::anyhow!("not Prometheus text 0.0.4: {e:?}\n{text}"))?;
    openmetrics::parse_openmetrics(&openmetrics)
        .map_err(|e| anyhow::anyhow!("not OpenMetrics 1.0.0: {e:?}\n{openmetrics}"))?;
    Ok(Scrape { text, openmetrics })
}

impl Scrape {
    /// `sample` in the text; errs unless the OpenMetrics answer holds it too (its value may
    /// have moved on between the two requests).
    pub fn both(&self, name: &str) -> anyhow::Result<f64> {
        match (sample(&self.text, name), sample(&self.openmetrics, name)) {
            (Some(a), Some(_)) => Ok(a),
            other => anyhow::bail!("{name}: {other:?} (text, openmetrics)\n{}", self.text),
        }
    }
}

/// The value of the sample `name` (with its labels as printed: `x{a="b"}`), if the exposition
/// has one.
pub fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_text_is_not_a_sample() {
        let text = "# HELP x_failed 1 when it failed.\n# TYPE x_failed gauge\nx_failed 0\n";
        assert_eq!(sample(text, "x_failed"), Some(0.0));
        assert_eq!(sample(text, "y"), None);
    }
}
