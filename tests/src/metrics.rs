//! Reading the Prometheus text the services serve at `/metrics`.

/// The text at `url`.
pub async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    Ok(http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// The sum of the samples of `name` that carry every label of `labels` (0 when there is none).
pub fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labelled = series.strip_prefix(name)?;
            let ours = (labelled.is_empty() || labelled.starts_with('{'))
                && labels
                    .iter()
                    .all(|(k, v)| labelled.contains(&format!("{k}=\"{v}\"")));
            ours.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_samples_of_one_family_with_the_labels_asked_for() {
        let text = "# HELP a_total A.\na_total{x=\"1\",y=\"q\"} 2\na_total{x=\"2\"} 3\n\
                    a_total_extra 7\nb 9\nh_sum 4\n";
        assert_eq!(sample_sum(text, "a_total", &[]), 5.0);
        assert_eq!(sample_sum(text, "a_total", &[("x", "2")]), 3.0);
        assert_eq!(sample_sum(text, "a_total", &[("y", "q"), ("x", "1")]), 2.0);
        assert_eq!(sample_sum(text, "b", &[]), 9.0);
        assert_eq!(sample_sum(text, "h_sum", &[]), 4.0);
        assert_eq!(sample_sum(text, "c", &[]), 0.0);
    }
}
