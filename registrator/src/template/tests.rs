//! Unit tests of the `-tags` template subset.

use super::*;
use crate::container::{ConfigFacts, ContainerId};

fn container() -> ContainerInfo {
    ContainerInfo {
        id: ContainerId("e20f9c1a76565d62".into()),
        name: "web_1".into(),
        image: "acme/web:1.2".into(),
        labels: [("com.acme.team".to_string(), "Payments".to_string())].into(),
        env: vec!["ENVIRONMENT=test".into(), "HOME=/root".into()],
        ports: vec![],
        networks: Default::default(),
        network_mode: "bridge".into(),
        health: None,
        paused: false,
        started_at: "t0".into(),
        config: ConfigFacts {
            hostname: "e20f9c1a7656".into(),
            ..ConfigFacts::default()
        },
    }
}

fn render(raw: &str) -> String {
    TagTemplate::parse(raw)
        .expect(raw)
        .render(&container())
        .expect(raw)
}

#[test]
fn fields_functions_and_pipelines() {
    assert_eq!(render("dc1,{{.Config.Hostname}}"), "dc1,e20f9c1a7656");
    assert_eq!(render("{{ .Name }}"), "/web_1");
    assert_eq!(render("{{strSlice .ID 0 12}}"), "e20f9c1a7656");
    assert_eq!(
        render(r#"{{index .Config.Labels "com.acme.team"}}"#),
        "Payments"
    );
    assert_eq!(
        render(r#"team-{{mIndex "com.acme.team" .Config.Labels | toLower}}"#),
        "team-payments"
    );
    assert_eq!(render("{{sIndex 0 .Config.Env}}"), "ENVIRONMENT=test");
    assert_eq!(
        render(r#"{{join ";" .Config.Env}}"#),
        "ENVIRONMENT=test;HOME=/root"
    );
    assert_eq!(render(r#"{{splitIndex -1 "/" .Config.Image}}"#), "web:1.2");
    assert_eq!(render(r#"{{replace -1 "=" "_" "a=b=c"}}"#), "a_b_c");
    assert_eq!(render("a, {{- .Config.Image -}} ,b"), "a,acme/web:1.2,b");
    assert!(TagTemplate::parse("prod,blue").expect("text").is_literal());
}

#[test]
fn unknown_fields_and_functions_are_refused_at_parse_time() {
    for (raw, want) in [
        ("{{.Config.Nope}}", "unknown field .Config.Nope"),
        ("{{.State.Running}}", "unknown field"),
        ("{{httpGet \"http://x\"}}", "unknown function \"httpGet\""),
        ("{{.ID", "unclosed"),
        ("{{}}", "empty"),
    ] {
        let err = TagTemplate::parse(raw).expect_err(raw).to_string();
        assert!(err.contains(want), "{raw}: {err}");
    }
}

#[test]
fn wrong_argument_kinds_fail_to_render() {
    let t = TagTemplate::parse("{{toUpper .Config.Env}}").expect("parses");
    assert!(t.render(&container()).is_err());
}
