//! The writer through the `weave` binary: rebuilds that touch only what changed, the guard against
//! directories that are not weave's, mount points, and `diff` and `build --check` on hostile output
//! directories (links to devices, FIFOs, trees that are not weave's). `scripts/kill-test.sh` stops
//! builds at every file-system call; these are the cases that need no strace.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

fn weave(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weave")).args(args).env("NO_COLOR", "1").output().unwrap()
}

/// Runs weave, failing the test if it has not finished within `seconds` (a read that hangs on a FIFO).
fn weave_within(seconds: u64, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weave"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(seconds) {
            let _ = child.kill();
            panic!("weave {args:?} did not finish within {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const TOPOLOGY: &str = "fixtures/valid/federated-mesh.yaml";

/// The fixture, and a copy with one agent's replica count changed, both named
/// `multi-cloud-values.yaml` (the lock records the input's name) in their own directories.
fn one_agent_change(directory: &Path) -> (String, String) {
    let text = std::fs::read_to_string(TOPOLOGY).unwrap();
    assert!(text.contains("replicas: 3"));
    let changed = text.replacen("replicas: 3", "replicas: 4", 1);
    let mut paths = Vec::new();
    for (name, text) in [("before", text.as_str()), ("after", changed.as_str())] {
        let path = directory.join(name).join("multi-cloud-values.yaml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        paths.push(path.to_str().unwrap().to_owned());
    }
    (paths[0].clone(), paths[1].clone())
}

/// [`one_agent_change`], and the topology before the change built into `<directory>/out`.
fn built_before_the_change(directory: &Path) -> (String, String, PathBuf) {
    let (before, after) = one_agent_change(directory);
    let out = directory.join("out");
    let output = weave(&["build", &before, "-o", out.to_str().unwrap()]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    (before, after, out)
}

/// (inode, modification time) of every file under a directory.
fn identities(root: &Path) -> BTreeMap<String, (u64, SystemTime)> {
    weave::write::scan(root, &[])
        .unwrap()
        .entries
        .keys()
        .map(|path| {
            let metadata = std::fs::metadata(root.join(path)).unwrap();
            (path.clone(), (metadata.ino(), metadata.modified().unwrap()))
        })
        .collect()
}

#[test]
fn a_one_agent_change_rewrites_only_the_files_whose_bytes_change() {
    let directory = tempfile::tempdir().unwrap();
    let (before, after, out) = built_before_the_change(directory.path());
    let fresh = directory.path().join("fresh");
    let out_arg = out.to_str().unwrap();
    let old_tree = weave::write::read_tree(&out).unwrap();
    let old_identities = identities(&out);
    let out_inode = std::fs::metadata(&out).unwrap().ino();
    // Past the file system's timestamp granularity, so that a rewritten file would show.
    std::thread::sleep(Duration::from_millis(50));
    let rebuilt = weave(&["build", &after, "-o", out_arg]);
    assert_eq!(code(&rebuilt), 0, "{}", stderr(&rebuilt));
    assert!(stderr(&rebuilt).contains("updated"), "{}", stderr(&rebuilt));
    assert_eq!(code(&weave(&["build", &after, "-o", fresh.to_str().unwrap()])), 0);
    let new_tree = weave::write::read_tree(&out).unwrap();
    assert_eq!(
        new_tree,
        weave::write::read_tree(&fresh).unwrap(),
        "an update is byte-identical to a fresh build"
    );
    let new_identities = identities(&out);
    let mut changed = 0;
    for (path, identity) in &old_identities {
        if old_tree[path] == new_tree[path] {
            assert_eq!(&new_identities[path], identity, "{path} kept its bytes but was rewritten");
        } else {
            changed += 1;
            assert_ne!(&new_identities[path], identity, "{path}");
        }
    }
    assert!(changed >= 2 && changed < old_tree.len() / 2, "{changed} of {} files changed", old_tree.len());
    // OUT itself is never replaced (so a mount point works like any directory).
    assert_eq!(std::fs::metadata(&out).unwrap().ino(), out_inode);
    // Nothing left beside or inside OUT.
    let names: Vec<_> =
        std::fs::read_dir(directory.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(!out.join(".weave-pending").exists());
    // A rebuild with no change answers from the lock and touches nothing, and --check finds OUT
    // fresh.
    let unchanged = weave(&["build", &after, "-o", out_arg]);
    assert_eq!(code(&unchanged), 0, "{}", stderr(&unchanged));
    assert!(stderr(&unchanged).contains("is up to date with"), "{}", stderr(&unchanged));
    assert!(stderr(&unchanged).contains("nothing written"), "{}", stderr(&unchanged));
    assert_eq!(identities(&out), new_identities);
    assert_eq!(code(&weave(&["build", "--check", &after, "-o", out_arg])), 0);
    let stale = weave(&["build", "--check", &before, "-o", out_arg]);
    assert_eq!(code(&stale), 1);
}

#[test]
fn a_rebuild_of_the_same_topology_restores_an_edited_file_and_refuses_an_added_one() {
    let directory = tempfile::tempdir().unwrap();
    let (before, _, out) = built_before_the_change(directory.path());
    let out_arg = out.to_str().unwrap();
    let built = weave::write::read_tree(&out).unwrap();
    let edited =
        built.keys().find(|path| path.starts_with("k8s/") && path.ends_with(".yaml")).unwrap().clone();
    std::thread::sleep(Duration::from_millis(50));
    // The same size and the old modification time: only the bytes and the status change differ.
    let path = out.join(&edited);
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] = if bytes[0] == b'#' { b'x' } else { b'#' };
    std::fs::write(&path, &bytes).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
    let rebuilt = weave(&["build", &before, "-o", out_arg]);
    assert_eq!(code(&rebuilt), 0, "{}", stderr(&rebuilt));
    assert!(stderr(&rebuilt).contains("1 files written, 0 removed"), "{}", stderr(&rebuilt));
    assert_eq!(weave::write::read_tree(&out).unwrap(), built);
    // A file added by hand is found through its directory: not up to date, and not weave's to
    // remove without --force.
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(out.join("k8s/stray.yaml"), "kind: Stray\n").unwrap();
    let refused = weave(&["build", &before, "-o", out_arg]);
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("k8s/stray.yaml"), "{}", stderr(&refused));
    assert!(out.join("k8s/stray.yaml").exists());
    std::fs::remove_file(out.join("k8s/stray.yaml")).unwrap();
    let again = weave(&["build", &before, "-o", out_arg]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(stderr(&again).contains("nothing written"), "{}", stderr(&again));
    assert_eq!(weave::write::read_tree(&out).unwrap(), built);
}

#[test]
fn a_lock_that_is_not_json_does_not_make_a_directory_weaves() {
    let directory = tempfile::tempdir().unwrap();
    let foreign = directory.path().join("foreign");
    std::fs::create_dir_all(foreign.join("src")).unwrap();
    std::fs::write(foreign.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(foreign.join("weave.lock.json"), "not json\n").unwrap();
    let output = weave(&["build", TOPOLOGY, "-o", foreign.to_str().unwrap()]);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("is not a weave output"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(foreign.join("src/main.rs")).unwrap(), "fn main() {}\n");
    // A valid lock that does not list the directory's files is not enough either.
    let out = directory.path().join("out");
    assert_eq!(code(&weave(&["build", TOPOLOGY, "-o", out.to_str().unwrap()])), 0);
    std::fs::copy(out.join("weave.lock.json"), foreign.join("weave.lock.json")).unwrap();
    let output = weave(&["build", TOPOLOGY, "-o", foreign.to_str().unwrap()]);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("src/main.rs"), "{}", stderr(&output));
    assert!(foreign.join("src/main.rs").exists());
    // --force replaces it with exactly the build.
    assert_eq!(code(&weave(&["build", TOPOLOGY, "-o", foreign.to_str().unwrap(), "--force"])), 0);
    assert_eq!(weave::write::read_tree(&foreign).unwrap(), weave::write::read_tree(&out).unwrap());
}

#[test]
fn diff_refuses_a_directory_that_is_not_a_weave_output() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(directory.path().join("lib/x")).unwrap();
    std::fs::write(directory.path().join("lib/x/a.so"), "ELF").unwrap();
    let output = weave_within(30, &["diff", directory.path().join("lib").to_str().unwrap(), TOPOLOGY]);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("is not a weave output directory"), "{}", stderr(&output));
    let output = weave_within(30, &["diff", "/usr/lib", TOPOLOGY]);
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    // The directory is read while the topology is analysed; an invalid topology is still reported
    // as such first, whatever the directory holds.
    let invalid = "fixtures/invalid/action-not-served.yaml";
    let output = weave_within(30, &["diff", directory.path().join("lib").to_str().unwrap(), invalid]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(!stderr(&output).contains("is not a weave output directory"), "{}", stderr(&output));
}

#[test]
fn fifos_and_device_links_in_out_are_never_read() {
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("out");
    let out_arg = out.to_str().unwrap();
    assert_eq!(code(&weave(&["build", TOPOLOGY, "-o", out_arg])), 0);
    // A FIFO and a link to /dev/zero where weave writes files.
    std::fs::remove_file(out.join("graph.mmd")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        out.join("graph.mmd"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let lock: weave::write::Lock =
        serde_json::from_slice(&std::fs::read(out.join("weave.lock.json")).unwrap()).unwrap();
    let victim = lock.files.keys().find(|path| path.starts_with("opa/")).unwrap().clone();
    std::fs::remove_file(out.join(&victim)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", out.join(&victim)).unwrap();
    let check = weave_within(30, &["build", "--check", TOPOLOGY, "-o", out_arg]);
    assert_eq!(code(&check), 1, "{}", stderr(&check));
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(
        listed.contains("changed  graph.mmd") && listed.contains(&format!("changed  {victim}")),
        "{listed}"
    );
    let diff = weave_within(30, &["diff", out_arg, TOPOLOGY]);
    assert_eq!(code(&diff), 1, "{}", stderr(&diff));
    assert!(String::from_utf8_lossy(&diff.stdout).contains("graph.mmd"));
    // The build replaces both, following neither.
    let build = weave_within(30, &["build", TOPOLOGY, "-o", out_arg]);
    assert_eq!(code(&build), 0, "{}", stderr(&build));
    assert!(std::fs::symlink_metadata(out.join(&victim)).unwrap().is_file());
    assert!(std::fs::symlink_metadata(out.join("graph.mmd")).unwrap().is_file());
    assert_eq!(code(&weave(&["build", "--check", TOPOLOGY, "-o", out_arg])), 0);
}

#[test]
fn diff_of_an_output_directory_reads_it_through_its_lock() {
    let directory = tempfile::tempdir().unwrap();
    let (before, after, out) = built_before_the_change(directory.path());
    let out_arg = out.to_str().unwrap();
    let same = weave(&["diff", out_arg, &before]);
    assert_eq!(code(&same), 0, "{}", String::from_utf8_lossy(&same.stdout));
    // The lock records `before`, so that answer came without a build; the same bytes under another
    // name are built and compared, and say the same.
    let renamed = directory.path().join("renamed.yaml");
    std::fs::copy(&before, &renamed).unwrap();
    for stat in [false, true] {
        let mut args = vec!["diff", out_arg, &before];
        let mut renamed_args = vec!["diff", out_arg, renamed.to_str().unwrap()];
        if stat {
            args.push("--stat");
            renamed_args.push("--stat");
        }
        let (shortcut, built) = (weave(&args), weave(&renamed_args));
        assert_eq!((code(&shortcut), code(&built)), (0, 0));
        assert_eq!(shortcut.stdout, built.stdout);
    }
    let changed = weave(&["diff", out_arg, &after]);
    assert_eq!(code(&changed), 1);
    let text = String::from_utf8_lossy(&changed.stdout);
    assert!(text.lines().any(|line| line.starts_with('-') && line.contains("replicas: 3")), "{text}");
    assert!(text.lines().any(|line| line.starts_with('+') && line.contains("replicas: 4")), "{text}");
    // The same files as a diff of the two topologies.
    let topologies = weave(&["diff", &before, &after, "--stat"]);
    let stat = weave(&["diff", out_arg, &after, "--stat"]);
    let artifacts = |output: &Output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip_while(|line| !line.starts_with("artifacts:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(artifacts(&stat), artifacts(&topologies));
}

/// `build` into a mount point: OUT is updated in place, never renamed, so the mount point is no
/// obstacle. Mounting needs privileges; without them the in-place update is checked by the inode test
/// above.
#[test]
fn builds_into_a_mount_point() {
    let directory = tempfile::tempdir().unwrap();
    let mount = directory.path().join("mnt");
    std::fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "weave-test", mount.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let (before, after) = one_agent_change(directory.path());
    let mount_arg = mount.to_str().unwrap();
    let first = weave(&["build", &before, "-o", mount_arg]);
    let second = weave(&["build", &after, "-o", mount_arg]);
    let check = weave(&["build", "--check", &after, "-o", mount_arg]);
    let _ = Command::new("umount").arg(&mount).status();
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert_eq!(code(&check), 0, "{}", stderr(&check));
}

#[test]
fn check_of_an_unchanged_topology_answers_from_the_lock_and_a_partial_build_records_its_targets() {
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("out");
    let out_arg = out.to_str().unwrap();
    assert_eq!(code(&weave(&["build", TOPOLOGY, "-o", out_arg])), 0);
    let check = weave(&["build", "--check", TOPOLOGY, "-o", out_arg]);
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    assert!(
        stderr(&check).contains("up to date") && stderr(&check).contains("as its lock records"),
        "{}",
        stderr(&check)
    );
    // A file edited by hand: the lock no longer vouches, the build in memory says what changed.
    std::fs::write(out.join("graph.mmd"), "flowchart LR\n").unwrap();
    let stale = weave(&["build", "--check", TOPOLOGY, "-o", out_arg]);
    assert_eq!(code(&stale), 1, "{}", stderr(&stale));
    assert_eq!(String::from_utf8_lossy(&stale.stdout), "changed  graph.mmd\n");

    // `--only` is recorded in the lock, so a partial OUT is current only for the same targets.
    let partial = directory.path().join("partial");
    let partial_arg = partial.to_str().unwrap();
    assert_eq!(code(&weave(&["build", TOPOLOGY, "--only", "opa,k8s", "-o", partial_arg])), 0);
    let lock: weave::write::Lock =
        serde_json::from_slice(&std::fs::read(partial.join("weave.lock.json")).unwrap()).unwrap();
    assert_eq!(lock.targets, ["k8s", "opa"], "in the targets' order");
    let same = weave(&["build", "--check", TOPOLOGY, "--only", "k8s,opa,k8s", "-o", partial_arg]);
    assert!(stderr(&same).contains("as its lock records"), "{}", stderr(&same));
    let whole = weave(&["build", "--check", TOPOLOGY, "-o", partial_arg]);
    assert_eq!(code(&whole), 1, "{}", stderr(&whole));
    assert!(String::from_utf8_lossy(&whole.stdout).contains("changed  weave.lock.json"));
    // Every target named is the whole build, whose lock names none.
    let every = "terraform,spire,k8s,tailscale,opa,prometheus,otel,image,gitops,deploy";
    assert_eq!(code(&weave(&["build", TOPOLOGY, "--only", every, "-o", partial_arg])), 0);
    assert_eq!(code(&weave(&["build", TOPOLOGY, "-o", out_arg])), 0);
    assert_eq!(weave::write::read_tree(&partial).unwrap(), weave::write::read_tree(&out).unwrap());
}
