//! The binary as a user runs it: bad flags and environment exit 64 (README's exit codes),
//! `--help` exits 0.

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_registrator"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("CONSUL_HTTP_ADDR")
        .output()
        .expect("run registrator");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code(), text)
}

#[test]
fn bad_flags_and_environment_exit_64_naming_the_input() {
    for (args, env, named) in [
        (&["-resync=abc"][..], &[][..], "abc"),
        (&["--no-such-flag"][..], &[][..], "--no-such-flag"),
        (&[][..], &[("REGISTRATOR_RESYNC", "abc")][..], "abc"),
        (&["--kv-prefix", "a/../b"][..], &[][..], "a/../b"),
    ] {
        let (code, text) = run(args, env);
        assert_eq!(code, Some(64), "{args:?} {env:?}: {text}");
        assert!(text.contains(named), "{args:?}: {text}");
    }
}

#[test]
fn help_exits_0_and_documents_the_codes() {
    let (code, text) = run(&["--help"], &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("64") && text.contains("EXIT CODES"), "{text}");
    let (code, _) = run(&["-help"], &[]);
    assert_eq!(code, Some(0));
}
