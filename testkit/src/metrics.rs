//! Reading a Prometheus exposition the way a scraper does: fetched from `/metrics`, sample lines
//! only (never `# HELP` text, which can contain a metric's name followed by anything).

/// The `/metrics` text served on `127.0.0.1:port`.
pub async fn scrape(port: u16) -> anyhow::Result<String> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let resp = reqwest::get(url).await?.error_for_status()?;
    Ok(resp.text().await?)
}

/// The value of the unlabelled sample `name`, if the exposition has one.
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
