//! Running the `panorama` binary as a user would, shared by the CLI test files.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn panorama(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(args)
        .env_remove("PANORAMA_PROJECT")
        .output()
        .expect("panorama binary runs")
}

/// Runs and must succeed; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = panorama(args);
    assert!(
        out.status.success(),
        "panorama {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs and must fail; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = panorama(args);
    assert!(
        !out.status.success(),
        "panorama {args:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

pub fn append(path: &Path, text: &str) {
    let mut all = std::fs::read_to_string(path).unwrap();
    all.push_str(text);
    std::fs::write(path, all).unwrap();
}

/// Pairwise precision, recall and F1 of the current run against the project's `truth.csv`
/// (`panorama eval`); the figures are printed for the test log.
pub fn eval_scores(project: &Path) -> (f64, f64, f64) {
    let out = ok(&[
        "eval",
        "-p",
        p(project),
        "--truth",
        p(&project.join("truth.csv")),
        "--format",
        "csv",
    ]);
    eprintln!("{}: {out}", project.display());
    let row: Vec<f64> = out
        .lines()
        .nth(1)
        .expect("a row of scores")
        .split(',')
        .skip(6)
        .map(|v| v.parse().unwrap())
        .collect();
    (row[0], row[1], row[2])
}

/// CSV output of a query on the current run.
/// `panorama unify report --format json` of `project`'s current run.
pub fn unify_report(project: &Path, sample_pairs: usize, examples: usize) -> serde_json::Value {
    serde_json::from_str(&ok(&[
        "unify",
        "-p",
        p(project),
        "report",
        "--format",
        "json",
        "--sample-pairs",
        &sample_pairs.to_string(),
        "--examples",
        &examples.to_string(),
    ]))
    .unwrap()
}

/// The directory of the run `current.json` points to.
pub fn current_run(project: &Path) -> std::path::PathBuf {
    let current: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.join(".panorama/current.json")).unwrap(),
    )
    .unwrap();
    project
        .join(".panorama/runs")
        .join(current["run_id"].as_str().unwrap())
}

pub fn query(project: &Path, sql: &str) -> String {
    ok(&["query", "-p", p(project), "--format", "csv", sql])
}

/// The hand-checked shop of `tests/slt/measures.slt`, copied to a temp dir.
pub fn shop_project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shop");
    for f in [
        "panorama.toml",
        "data/customers.csv",
        "data/loyalty.csv",
        "data/orders.csv",
    ] {
        write(
            &tmp.path().join(f),
            &std::fs::read_to_string(from.join(f)).unwrap(),
        );
    }
    tmp
}

/// A running `panorama serve` on free ports (addresses as `host:port`), stopped on drop.
pub struct Server {
    pub child: std::process::Child,
    pub pg: String,
    pub flight: String,
    pub http: String,
}

impl Server {
    pub fn start(project: &Path, extra: &[&str]) -> Server {
        use std::io::{BufRead, Read};
        let mut args = vec![
            "serve",
            "-p",
            p(project),
            "--pg-port",
            "0",
            "--flight-port",
            "0",
            "--http-port",
            "0",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_panorama"))
            .args(&args)
            .env_remove("PANORAMA_PROJECT")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("panorama serve starts");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut pg, mut flight, mut http) = (String::new(), String::new(), String::new());
        let mut line = String::new();
        // `serve` prints one line per protocol (`postgres postgres://HOST:PORT/panorama`), then `ready`.
        let addr = |s: &str| {
            s.split("://")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string()
        };
        loop {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "panorama serve exited before it was ready: {:?}",
                child.wait()
            );
            let l = line.trim();
            if let Some(rest) = l.strip_prefix("postgres ") {
                pg = addr(rest.trim());
            } else if let Some(rest) = l.strip_prefix("flight ") {
                flight = addr(rest.trim());
            } else if let Some(rest) = l.strip_prefix("http ") {
                http = addr(rest.trim());
            } else if l == "ready" {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Server {
            child,
            pg,
            flight,
            http,
        }
    }

    pub fn pg_port(&self) -> &str {
        self.pg.rsplit(':').next().unwrap()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True under `.ci/run`, where a missing client or service is a failure, not a skip.
pub fn required() -> bool {
    std::env::var("PANORAMA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// True when `program args` runs and succeeds; else the part needing it is skipped (or the
/// test fails under CI).
pub fn have(what: &str, program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !required(),
            "{what} is missing but PANORAMA_REQUIRE_SERVICES=1"
        );
        eprintln!("SKIPPED part: {what} is not installed (.ci/run installs it)");
    }
    ok
}

/// A generated demo project (`panorama demo`) of `persons` people from `seed`.
pub fn demo(persons: &str, seed: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    ok(&[
        "demo",
        "--persons",
        persons,
        "--seed",
        seed,
        "--out",
        p(tmp.path()),
        "-q",
    ]);
    tmp
}

pub type Rows = Vec<Vec<String>>;

/// The delimiter of a demo export: the loyalty one uses semicolons.
pub fn delimiter(path: &Path) -> u8 {
    match path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("loyalty")
    {
        true => b';',
        false => b',',
    }
}

/// The demo's loyalty export is in Windows-1252 (as a Windows tool writes it); the others
/// are UTF-8.
fn encoding_of(path: &Path) -> &'static encoding_rs::Encoding {
    match path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("loyalty")
    {
        true => encoding_rs::WINDOWS_1252,
        false => encoding_rs::UTF_8,
    }
}

/// A demo export's text.
pub fn read_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let (text, _, malformed) = encoding_of(path).decode(&bytes);
    assert!(
        !malformed,
        "{} is not {}",
        path.display(),
        encoding_of(path).name()
    );
    text.into_owned()
}

/// Write a demo export's text in its encoding.
pub fn write_text(path: &Path, text: &str) {
    let (bytes, _, unmappable) = encoding_of(path).encode(text);
    assert!(
        !unmappable,
        "{text:?} does not fit {}",
        encoding_of(path).name()
    );
    std::fs::write(path, bytes).unwrap();
}

/// A demo export's header and rows.
pub fn read_csv(path: &Path) -> (Vec<String>, Rows) {
    let text = read_text(path);
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter(path))
        .from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// Write a demo export (creating its folder).
pub fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter(path))
        .from_writer(Vec::new());
    w.write_record(header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
    write_text(path, &text);
}

/// A Python interpreter with the `deltalake` package (`PANORAMA_TEST_PYTHON`, else `python3`),
/// or `None` (the test skips) unless `PANORAMA_REQUIRE_SERVICES=1`, as in CI.
pub fn python_with_deltalake() -> Option<String> {
    let python = std::env::var("PANORAMA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import deltalake, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Some(python);
    }
    assert!(
        std::env::var("PANORAMA_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "the deltalake Python package is needed (PANORAMA_REQUIRE_SERVICES=1)"
    );
    eprintln!("SKIPPED: python deltalake not installed; .ci/run installs it");
    None
}

/// Run a Python script; its trimmed standard output.
pub fn python_ok(python: &str, script: &str) -> String {
    let out = Command::new(python).args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Copy a folder tree (a project's data, a fixture).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `panorama users add NAME` with the password on standard input, as a person types it.
pub fn add_user(project: &Path, name: &str, password: &str, role: &str) {
    use std::io::Write;
    let mut add = Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(["users", "-p", p(project), "add", name, "--role", role])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());
}

/// A CA (`ca.pem`) and a server certificate for localhost and 127.0.0.1 it signs (`cert.pem`,
/// `key.pem`) in `dir`, by the openssl command; false when it is missing.
pub fn make_certificates(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let made = run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=panorama-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    if !made {
        assert!(!required(), "openssl is missing or failed");
        eprintln!("SKIPPED part: openssl is not installed; serving without TLS");
    }
    made
}

/// The client scripts the tests run (`tests/clients/`).
pub fn clients_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Rows of a `panorama query` as JSON objects.
pub fn json_rows(project: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    ok(&["query", "-p", p(project), "--format", "json", sql])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l).unwrap() {
            serde_json::Value::Object(o) => o,
            other => panic!("not an object: {other}"),
        })
        .collect()
}

/// A project of one CSV source of two people (`people.csv`: id, name), run.
pub fn people_project(dir: &Path) {
    write(
        &dir.join("panorama.toml"),
        "[sources.people]\nlocation = \"people.csv\"\nprimary_key = \"id\"\n",
    );
    write(&dir.join("people.csv"), "id,name\n1,Ann\n2,Bob\n");
    ok(&["run", "-p", p(dir), "-q"]);
}

/// A PostgreSQL client of `server`, logged in as the default user.
pub async fn pg_client(server: &Server) -> tokio_postgres::Client {
    let (pg, connection) = tokio_postgres::connect(
        &format!(
            "postgres://panorama@{}/panorama",
            server.pg.replace("127.0.0.1", "localhost")
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    pg
}
