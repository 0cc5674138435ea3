use super::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sg-install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn listing(d: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(d)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn unchanged_bytes_are_not_rewritten() {
    let d = dir("same");
    let f = d.join("a.conf");
    std::fs::write(&f, "x").expect("write");
    let staged = stage(&[(f.clone(), b"x".to_vec())]).expect("no-op");
    assert!(staged.changed.is_empty());
    staged.commit();
}

#[test]
fn a_rollback_restores_every_file_and_leaves_no_debris() {
    let d = dir("rollback");
    let (a, b) = (d.join("a.conf"), d.join("b.conf"));
    std::fs::write(&a, "old").expect("write");
    let staged =
        stage(&[(a.clone(), b"new".to_vec()), (b.clone(), b"new".to_vec())]).expect("staged");
    assert_eq!(std::fs::read_to_string(&a).expect("a"), "new");
    staged.rollback();
    assert_eq!(std::fs::read_to_string(&a).expect("a"), "old");
    assert!(!b.exists(), "a file that did not exist is removed again");
    assert_eq!(listing(&d), ["a.conf"]);
}

#[test]
fn a_commit_keeps_the_new_files_and_drops_the_journals() {
    let d = dir("commit");
    let a = d.join("a.conf");
    std::fs::write(&a, "old").expect("write");
    stage(&[(a.clone(), b"new".to_vec())])
        .expect("staged")
        .commit();
    assert_eq!(std::fs::read_to_string(&a).expect("a"), "new");
    assert_eq!(listing(&d), ["a.conf"]);
}

/// The second file's directory does not exist: the first file must not stay installed.
#[test]
fn a_write_error_on_a_later_file_installs_nothing() {
    let d = dir("partial");
    let a = d.join("a.conf");
    std::fs::write(&a, "old").expect("write");
    let missing = d.join("missing-dir").join("b.conf");
    let err = stage(&[(a.clone(), b"new".to_vec()), (missing, b"new".to_vec())])
        .expect_err("the second file cannot be written");
    assert!(err.to_string().contains("missing-dir"), "{err}");
    assert_eq!(std::fs::read_to_string(&a).expect("a"), "old");
    assert_eq!(listing(&d), ["a.conf"]);
}

#[test]
fn a_planted_symlink_at_a_temp_or_journal_path_changes_nothing_outside() {
    let d = dir("symlink");
    let target = d.join("victim");
    std::fs::write(&target, "precious").expect("victim");
    let a = d.join("a.conf");
    std::fs::write(&a, "old").expect("write");
    std::os::unix::fs::symlink(&target, journal_of(&a)).expect("plant journal");
    std::os::unix::fs::symlink(&target, absent_marker_of(&d.join("b.conf"))).expect("plant marker");
    let staged = stage(&[
        (a.clone(), b"new".to_vec()),
        (d.join("b.conf"), b"b".to_vec()),
    ])
    .expect("staged");
    staged.rollback();
    assert_eq!(
        std::fs::read_to_string(&target).expect("victim"),
        "precious"
    );
    assert_eq!(std::fs::read_to_string(&a).expect("a"), "old");
}

#[test]
fn a_crash_between_rename_and_check_is_rolled_back() {
    let d = dir("crash");
    let a = d.join("a.conf");
    std::fs::write(&a, "unchecked").expect("write");
    std::fs::write(journal_of(&a), "good").expect("journal");
    std::fs::write(sibling(&a, "swarmgate-tmp-0123"), "half").expect("temp");
    assert_eq!(recover(std::slice::from_ref(&a)), std::slice::from_ref(&a));
    assert_eq!(std::fs::read_to_string(&a).expect("a"), "good");
    assert_eq!(listing(&d), ["a.conf"]);
}
