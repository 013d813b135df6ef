//! The nginx config of a test: the values of `nginx/nginx.conf.template`'s six placeholders and
//! the plain replacement that fills them, refusing values that would break nginx's syntax and a
//! template with a placeholder left unfilled. The tests' settings and the launcher's
//! (`./deploy/up`) differ only in the trusted blocks and the workers' user.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use nix::unistd::{Group, User};

use crate::processes;

/// The address blocks the test nginx believes `X-Forwarded-For` from: the test itself.
const TRUSTED_CDN: [&str; 1] = ["127.0.0.1"];

/// The config template, shared with `./deploy/up`.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nginx/nginx.conf.template")
}

/// The values of the template's placeholders (documented at the top of the template).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The template: [`template_path`] for the tests, the launcher's repository's otherwise.
    pub template: PathBuf,
    /// `@PREFIX@`: the instance's folder, absolute.
    pub prefix: PathBuf,
    /// `@NGINX_PORT@`.
    pub port: u16,
    /// `@STATIC_ROOT@`: served at `/static/`, absolute.
    pub static_root: PathBuf,
    /// `@EDGE_UPSTREAMS@`: `HOST:PORT` of each edge.
    pub edges: Vec<String>,
    /// `@TRUSTED_CDN@`: addresses or CIDR blocks whose `X-Forwarded-For` is believed.
    pub trusted_cdn: Vec<String>,
    /// `@USER@`: a whole line, `user NAME GROUP;` or a comment.
    pub user_line: String,
}

impl Settings {
    /// The settings of a test nginx: trusts 127.0.0.1; as root, workers as root (see the module
    /// documentation), else a comment.
    pub fn for_test(prefix: &Path, port: u16, edges: &[String], static_root: &Path) -> Self {
        let user_line = if nix::unistd::geteuid().is_root() {
            "user root root;".to_owned()
        } else {
            "# not run as root: the workers run as the user running the tests".to_owned()
        };
        Self {
            template: template_path(),
            prefix: prefix.to_path_buf(),
            port,
            static_root: static_root.to_path_buf(),
            edges: edges.to_vec(),
            trusted_cdn: TRUSTED_CDN.iter().map(|b| (*b).to_owned()).collect(),
            user_line,
        }
    }
}

impl Settings {
    /// The settings of the launcher's nginx, believing `X-Forwarded-For` from `trusted_cdn`. Not
    /// root: a comment (the workers run as we do). Root: the workers drop to `www-data` (else
    /// `nobody`), which must reach the prefix and read the static folder; when a parent folder
    /// is closed to it, they run as root, and `warning` says so.
    pub fn for_deploy(
        prefix: &Path,
        port: u16,
        edges: &[String],
        static_root: &Path,
        trusted_cdn: &[String],
    ) -> (Self, Option<String>) {
        let (user_line, warning) = deploy_user_line(prefix, static_root);
        let settings = Self {
            trusted_cdn: trusted_cdn.to_vec(),
            user_line,
            ..Self::for_test(prefix, port, edges, static_root)
        };
        (settings, warning)
    }
}

fn deploy_user_line(prefix: &Path, static_root: &Path) -> (String, Option<String>) {
    if !nix::unistd::geteuid().is_root() {
        let line = "# not run as root: the workers run as the user running nginx's master";
        return (line.to_owned(), None);
    }
    let user = ["www-data", "nobody"]
        .into_iter()
        .find_map(|name| User::from_name(name).ok().flatten());
    let Some(user) = user else {
        let warning = "no www-data or nobody user: its workers run as root";
        return ("user root root;".to_owned(), Some(warning.to_owned()));
    };
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    let reaches = processes::user_can(uid, gid, "-x", prefix)
        && processes::user_can(uid, gid, "-r", static_root)
        && processes::user_can(uid, gid, "-x", static_root);
    if !reaches {
        let warning = format!(
            "user {} cannot reach {} or read {} (a parent folder is closed to it): its workers run as root",
            user.name,
            prefix.display(),
            static_root.display()
        );
        return ("user root root;".to_owned(), Some(warning));
    }
    let group = Group::from_gid(user.gid)
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |group| group.name);
    (format!("user {} {group};", user.name), None)
}

/// Fills the placeholders of `template` with `settings`, refusing values that would break the
/// config's syntax, and a template with a placeholder left unfilled.
pub fn render(template: &str, settings: &Settings) -> anyhow::Result<String> {
    let prefix = config_path_value(&settings.prefix)?;
    let static_root = config_path_value(&settings.static_root)?;
    ensure!(
        !settings.edges.is_empty(),
        "nginx: no edge to send requests to"
    );
    let mut upstreams = String::new();
    for edge in &settings.edges {
        let host_port = edge.rsplit_once(':').filter(|(host, port)| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:[]-".contains(c))
                && !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
        });
        ensure!(host_port.is_some(), "nginx: edge {edge:?} is not HOST:PORT");
        upstreams.push_str(&format!("server {edge}; "));
    }
    let mut trusted = String::new();
    for block in &settings.trusted_cdn {
        ensure!(
            !block.is_empty()
                && block
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || ".:/".contains(c)),
            "nginx: trusted block {block:?} is not an address or CIDR block"
        );
        trusted.push_str(&format!("set_real_ip_from {block}; "));
    }
    ensure!(
        !settings.user_line.contains('\n'),
        "nginx: the user line must be one line"
    );
    let text = template
        .replace("@PREFIX@", prefix)
        .replace("@NGINX_PORT@", &settings.port.to_string())
        .replace("@STATIC_ROOT@", static_root)
        .replace("@EDGE_UPSTREAMS@", &upstreams)
        .replace("@TRUSTED_CDN@", &trusted)
        .replace("@USER@", &settings.user_line);
    if let Some(left) = leftover_placeholder(&text) {
        bail!("nginx: the template has a placeholder the harness does not fill: {left}");
    }
    Ok(text)
}

/// A path as it may appear in the config unquoted: absolute, UTF-8, nothing nginx would parse.
fn config_path_value(path: &Path) -> anyhow::Result<&str> {
    let text = path
        .to_str()
        .with_context(|| format!("nginx: {} is not UTF-8", path.display()))?;
    ensure!(
        path.is_absolute()
            && !text
                .chars()
                .any(|c| c.is_whitespace() || ";{}$\"'\\#".contains(c)),
        "nginx: {text} must be an absolute path without spaces, quotes or ;{{}}$\\#"
    );
    Ok(text)
}

/// The first `@NAME@` (capitals and underscores) left in `text`.
fn leftover_placeholder(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('@') {
            return Some(&rest[start..start + name_len + 2]);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{leftover_placeholder, render, template_path, Settings};

    fn settings() -> Settings {
        Settings {
            template: template_path(),
            prefix: "/tmp/nginx-prefix".into(),
            port: 18080,
            static_root: "/srv/static".into(),
            edges: vec!["127.0.0.1:8081".into(), "10.0.0.2:8081".into()],
            trusted_cdn: vec!["127.0.0.1".into(), "173.245.48.0/20".into()],
            user_line: "user www-data www-data;".into(),
        }
    }

    fn check(template: &str, settings: &Settings, expected: Result<&str, &str>) {
        let got = render(template, settings).map_err(|e| format!("{e:#}"));
        match (&got, expected) {
            (Ok(text), Ok(want)) => assert_eq!(text, want, "template: {template}"),
            (Err(error), Err(want)) => assert!(error.contains(want), "{error} lacks {want}"),
            _ => panic!("template {template}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let s = settings();
        check(
            "@USER@\npid @PREFIX@/nginx.pid;\nlisten 127.0.0.1:@NGINX_PORT@;\nalias @STATIC_ROOT@/;",
            &s,
            Ok("user www-data www-data;\npid /tmp/nginx-prefix/nginx.pid;\n\
                listen 127.0.0.1:18080;\nalias /srv/static/;"),
        );
        check(
            "upstream edge { @EDGE_UPSTREAMS@ }\n@TRUSTED_CDN@",
            &s,
            Ok(
                "upstream edge { server 127.0.0.1:8081; server 10.0.0.2:8081;  }\n\
                set_real_ip_from 127.0.0.1; set_real_ip_from 173.245.48.0/20; ",
            ),
        );
        check("user@example.com stays", &s, Ok("user@example.com stays"));
        check("@NEW_THING@", &s, Err("does not fill: @NEW_THING@"));
    }

    #[test]
    fn values_that_would_break_the_syntax_are_refused() {
        let with = |change: fn(&mut Settings)| {
            let mut s = settings();
            change(&mut s);
            s
        };
        check(
            "x",
            &with(|s| s.prefix = "relative/dir".into()),
            Err("absolute path"),
        );
        check(
            "x",
            &with(|s| s.static_root = "/a b".into()),
            Err("absolute path"),
        );
        check(
            "x",
            &with(|s| s.static_root = "/a;b".into()),
            Err("absolute path"),
        );
        check(
            "x",
            &with(|s| s.edges = vec!["127.0.0.1".into()]),
            Err("is not HOST:PORT"),
        );
        check(
            "x",
            &with(|s| s.edges = vec!["a b:1".into()]),
            Err("is not HOST:PORT"),
        );
        check("x", &with(|s| s.edges.clear()), Err("no edge"));
        check(
            "x",
            &with(|s| s.trusted_cdn = vec!["1.2.3.4; deny all".into()]),
            Err("not an address"),
        );
    }

    #[test]
    fn leftover_placeholders_are_found() {
        assert_eq!(leftover_placeholder("a @B_C@ d"), Some("@B_C@"));
        assert_eq!(leftover_placeholder("mail@x.org and @ALL@"), Some("@ALL@"));
        assert_eq!(leftover_placeholder("@@ @lower@ @"), None);
    }

    #[test]
    fn the_shipped_template_renders_completely() {
        let template = std::fs::read_to_string(template_path()).unwrap();
        let text = render(&template, &settings()).unwrap();
        assert!(text.contains("listen 127.0.0.1:18080"), "{text}");
        assert!(
            text.contains("server 127.0.0.1:8081; server 10.0.0.2:8081;"),
            "{text}"
        );
        assert!(Path::new(&template_path()).is_file());
    }
}
