//! Rendering tests: the default templates against golden files, and the escaping rules.

use super::*;
use crate::model::{Catalog, Instance, ServiceView};
use crate::plan::{build, HealthFilter, PlanOptions};
use crate::settings::{DeploySettings, Settings};
use swarmgate_consul::CheckStatus;

fn inst(id: &str, addr: &str, port: u16, tags: &[&str], meta: &[(&str, &str)]) -> Instance {
    Instance {
        id: id.into(),
        node: "n1".into(),
        address: addr.into(),
        port,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        meta: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        health: CheckStatus::Passing,
    }
}

fn view(instances: Vec<Instance>) -> ServiceView {
    ServiceView {
        instances,
        invalid: vec![],
    }
}

/// The sample plan and page.
fn sample() -> (Plan, Page) {
    sample_with(|_| {})
}

/// The sample plan and page, with the plan's options tuned.
fn sample_with(tune: impl Fn(&mut PlanOptions)) -> (Plan, Page) {
    let catalog = Catalog {
        unnamed: vec![],
        services: [
            (
                "api".to_string(),
                view(vec![
                    inst(
                        "api-1",
                        "10.0.0.1",
                        8001,
                        &["blue", "public"],
                        &[("namespace", "shop"), ("sticky", "ip_hash")],
                    ),
                    inst("api-2", "10.0.0.2", 8002, &["green"], &[]),
                ]),
            ),
            (
                "web".to_string(),
                view(vec![
                    inst(
                        "web-b1",
                        "10.0.0.3",
                        8003,
                        &["blue"],
                        &[
                            ("public", "true"),
                            ("tls_cert", "/certs/web.pem"),
                            ("tls_key", "/certs/web.key"),
                        ],
                    ),
                    inst("web-b2", "fd00::4", 8004, &["blue"], &[]),
                    inst("web-g1", "10.0.0.5", 8005, &["green"], &[]),
                ]),
            ),
            (
                "empty".to_string(),
                view(vec![{
                    let mut i = inst("e", "10.0.0.6", 1, &[], &[]);
                    i.health = CheckStatus::Critical;
                    i
                }]),
            ),
        ]
        .into(),
    };
    let settings: Settings = [
        (
            "web".to_string(),
            DeploySettings {
                active: Some("blue".into()),
                canary: 10,
                ..Default::default()
            },
        ),
        (
            "api".to_string(),
            DeploySettings {
                active: Some("blue".into()),
                canary: 0,
                ..Default::default()
            },
        ),
    ]
    .into();
    let mut opts = PlanOptions {
        colors: vec!["blue".into(), "green".into()],
        health: HealthFilter::Passing,
        backup_inactive: true,
        domain: "example.com".into(),
        allow_hostnames: false,
        preview: false,
    };
    tune(&mut opts);
    let page = Page {
        colors: opts.colors.clone(),
        domain: opts.domain.clone(),
        listen: 80,
        listen_tls: 443,
        dataplane: "reload",
        preview_header: "X-Swarmgate-Color".into(),
        preview_var: "http_x_swarmgate_color".into(),
        lua: None,
        traffic: Some(crate::traffic_syslog::page(([127, 0, 0, 1], 5140).into())),
    };
    (build(&catalog, &settings, &opts, None, &AnyFile), page)
}

/// Every TLS file exists.
struct AnyFile;

impl crate::plan::FileProbe for AnyFile {
    fn check(&self, _: &std::path::Path) -> Result<(), String> {
        Ok(())
    }
}

fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("write golden");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(got, want, "{name} differs from its golden file");
}

#[test]
fn default_templates_match_golden_files() {
    let r = Renderer::load(&TemplateSpec::defaults(std::path::Path::new("/out")))
        .expect("defaults compile");
    let (plan, page) = sample();
    let served: Vec<_> = plan.served().collect();
    let files = r.render(&page.context(&served)).expect("render");
    assert_eq!(
        files[0].0,
        std::path::Path::new("/out/swarmgate-upstreams.conf")
    );
    golden(
        "upstreams.conf",
        std::str::from_utf8(&files[0].1).expect("utf8"),
    );
    golden(
        "vhosts.conf",
        std::str::from_utf8(&files[1].1).expect("utf8"),
    );
}

/// `--preview` with a colour no instance has: per-colour upstreams for the colours with healthy
/// instances (the sticky api's green too, which its main upstream leaves out), `if`s on the
/// header in each vhost, 503 for the empty colour; the main upstreams as without preview.
#[test]
fn preview_templates_match_golden_files() {
    let r = Renderer::load(&TemplateSpec::defaults(std::path::Path::new("/out")))
        .expect("defaults compile");
    let (plan, page) = sample_with(|o| {
        o.preview = true;
        o.colors.push("red".into());
    });
    let served: Vec<_> = plan.served().collect();
    let files = r.render(&page.context(&served)).expect("render");
    let text = |i: usize| String::from_utf8(files[i].1.clone()).expect("utf8");
    golden("upstreams-preview.conf", &text(0));
    golden("vhosts-preview.conf", &text(1));
    let (plain, _) = sample();
    let plain_served: Vec<_> = plain.served().collect();
    let before = r.render(&page.context(&plain_served)).expect("render");
    let (mut in_preview, upstreams) = (false, text(0));
    let main: Vec<&str> = upstreams
        .lines()
        .filter(|l| {
            in_preview |= l.starts_with("upstream ") && l.contains("__");
            let keep = !in_preview;
            in_preview &= *l != "}";
            keep
        })
        .collect();
    assert_eq!(
        main.join("\n") + "\n",
        std::str::from_utf8(&before[0].1).expect("utf8"),
        "the main upstreams are the same with preview on"
    );
}

#[test]
fn tokens_are_bare_or_quoted_never_raw() {
    assert_eq!(nginx_token("10.0.0.1:80").as_deref(), Ok("10.0.0.1:80"));
    assert_eq!(nginx_token("[fd00::1]:80").as_deref(), Ok("[fd00::1]:80"));
    assert_eq!(nginx_token("a;}b{").as_deref(), Ok("\"a;}b{\""));
    assert_eq!(nginx_token("x # y").as_deref(), Ok("\"x # y\""));
    assert_eq!(nginx_token("q\"uo\\te").as_deref(), Ok("\"q\\\"uo\\\\te\""));
    assert_eq!(nginx_token("").as_deref(), Ok("\"\""));
    assert!(nginx_token("$host").is_err());
    assert!(nginx_token("a\nb").is_err());
    assert!(nginx_token("a\rb").is_err());
}

#[test]
fn a_hostile_value_printed_by_a_template_cannot_add_a_directive() {
    let dir = std::env::temp_dir().join(format!("sg-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let src = dir.join("t.j2");
    std::fs::write(&src, "{% for s in services %}{% for i in s.instances %}# {{ i.meta.note }}\nset_real_ip_from {{ i.tags[0] }};\n{% endfor %}{% endfor %}").expect("write");
    let spec = TemplateSpec::parse(&format!("{}:/out/t.conf", src.display())).expect("spec");
    let r = Renderer::load(&[spec]).expect("compile");
    let (plan, page) = sample();
    let mut api = plan.services["api"].clone();
    api.instances.truncate(1);
    api.instances[0].tags = vec!["1.2.3.4; } server { listen 81".to_string()];
    api.instances[0].meta = [("note".to_string(), "x\ninclude /etc/passwd;".to_string())].into();
    let err = r
        .render(&page.context(&[&api]))
        .expect_err("control characters are refused");
    assert!(err.contains("control character"), "{err}");
    api.instances[0].meta = [("note".to_string(), "fine".to_string())].into();
    let out = String::from_utf8(
        r.render(&page.context(&[&api]))
            .expect("render")
            .remove(0)
            .1,
    )
    .expect("utf8");
    assert_eq!(
        out,
        "# fine\nset_real_ip_from \"1.2.3.4; } server { listen 81\";\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_service_a_template_cannot_print_is_left_out_alone() {
    let dir = std::env::temp_dir().join(format!("sg-render-iso-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let src = dir.join("t.j2");
    std::fs::write(&src, "{% for s in services %}{% for i in s.instances %}# {{ s.name }} {{ i.meta.note }}\n{% endfor %}{% endfor %}").expect("write");
    let spec = TemplateSpec::parse(&format!("{}:/out/t.conf", src.display())).expect("spec");
    let r = Renderer::load(&[spec]).expect("compile");
    let (mut plan, page) = sample();
    for s in plan.services.values_mut() {
        for i in &mut s.instances {
            i.meta.insert("note".into(), "ok".into());
        }
    }
    let web = plan.services.get_mut("web").expect("web");
    web.instances[1].meta.insert("note".into(), "$evil".into());
    let (files, culprits) = r.render_isolating(&plan, &page).expect("renders the rest");
    assert_eq!(culprits.len(), 1, "{culprits:?}");
    assert_eq!(culprits[0].0, "web");
    assert!(culprits[0].1.contains('$'), "{culprits:?}");
    let out = String::from_utf8(files[0].1.clone()).expect("utf8");
    assert!(out.contains("# api ok") && !out.contains("# web"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn template_errors_name_the_template() {
    let dir = std::env::temp_dir().join(format!("sg-render-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let src = dir.join("broken.j2");
    std::fs::write(&src, "{% for s in services %}").expect("write");
    let err =
        Renderer::load(&[TemplateSpec::parse(&format!("{}:/x", src.display())).expect("spec")])
            .err()
            .expect("fails");
    assert!(err.contains("broken.j2"), "{err}");
    assert!(TemplateSpec::parse("nocolon").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_lua_module_is_built_in_and_installed_verbatim() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/lua/swarmgate");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("templates/lua/swarmgate")
        .filter_map(|e| e.ok())
        .map(|e| format!("swarmgate/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".lua"))
        .collect();
    on_disk.sort();
    let built_in: Vec<String> = LUA_MODULES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(built_in, on_disk, "LUA_MODULES lists every module");
    let specs = TemplateSpec::lua_modules(Path::new("/lua"));
    let r = Renderer::load(&specs).expect("load");
    let (_, page) = sample();
    for (dest, bytes) in r.render(&page.context(&[])).expect("render") {
        let name = dest.strip_prefix("/lua").expect("under --lua-dir");
        let want = std::fs::read(dir.parent().expect("lua").join(name)).expect("module");
        assert!(bytes == want, "{} is installed verbatim", name.display());
    }
}

#[test]
fn lua_strings_cannot_end_the_string_or_add_code() {
    let lua = |s: &str| lua_string(s).to_string();
    assert_eq!(lua("app"), "\"app\"");
    assert_eq!(lua("/run/sg/state.json"), "\"/run/sg/state.json\"");
    assert_eq!(
        lua("a\" .. os.exit() .. \""),
        "\"a\\034\\032..\\032os.exit\\040\\041\\032..\\032\\034\""
    );
    assert_eq!(lua("x]]\\\n"), "\"x\\093\\093\\092\\010\"");
}
