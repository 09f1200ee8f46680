//! The HTML morning report in a real browser: Debian's `chromium`, headless, loads the
//! rendered sample report (a finding in every section, a fix applied, changes, a region not
//! scanned) from a local HTTP server and must show every finding's title and command, log
//! nothing to the console (no script or page errors) and ask for nothing but the report
//! itself: the report is read offline, in a mail client or from the state store, so it
//! must be self-contained (no CDN fonts, styles or scripts).
//!
//! The server sends the page with a Content-Security-Policy that allows only what a
//! self-contained page uses (inline styles and scripts, `data:` images and fonts), so any
//! fetch the document makes from elsewhere is blocked and logged to the console as a
//! violation, which the console check catches. (A proxy would also see chromium's own
//! update and time requests, which have nothing to do with the document.) A second test
//! loads a page with exactly those faults, so the check is shown to see them.
//!
//! Without `chromium` (`apt-get install chromium`; `.ci/run` installs it) the tests print
//! a notice and return, unless `ESCHER_REQUIRE_CHROMIUM=1` (set by `.ci/run`), when they fail.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use escher_test_support::chromium::Chromium;

const PAGE: &str = "/report.html";

fn chromium_or_skip() -> Option<Chromium> {
    match Chromium::find() {
        Some(chromium) => Some(chromium),
        None if std::env::var_os("ESCHER_REQUIRE_CHROMIUM").is_some() => {
            panic!("ESCHER_REQUIRE_CHROMIUM is set but chromium is not installed (apt-get install -y --no-install-recommends chromium)")
        }
        None => {
            eprintln!("NOTICE: chromium not installed; the HTML report render test is skipped (apt-get install chromium, as .ci/run does)");
            None
        }
    }
}

/// One request chromium made: the method and the request target.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    method: String,
    target: String,
}

/// What a self-contained page may load: nothing from any other address.
const SELF_CONTAINED: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; font-src data:";

/// Serves `html` at [`PAGE`] under [`SELF_CONTAINED`] and records every request made to it.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(html: String) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let html = Arc::new(html);
        // Lives as long as the test process; each connection is answered and closed.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (recorded, html) = (Arc::clone(&recorded), Arc::clone(&html));
                std::thread::spawn(move || answer(stream, &recorded, &html));
            }
        });
        Server { addr, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("http://{}{PAGE}", self.addr)
    }
}

fn answer(mut stream: TcpStream, recorded: &Mutex<Vec<Request>>, html: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut first = head.lines().next().unwrap_or_default().split_whitespace();
    let request = Request {
        method: first.next().unwrap_or_default().to_string(),
        target: first.next().unwrap_or_default().to_string(),
    };
    let response = if request.method == "GET" && request.target == PAGE {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Security-Policy: {SELF_CONTAINED}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
            html.len()
        )
    } else {
        // A favicon, or anything else: nothing to serve.
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    };
    if let Ok(mut requests) = recorded.lock() {
        requests.push(request);
    }
    let _ = stream.write_all(response.as_bytes());
}

/// What loading one page showed.
struct PageLoad {
    /// The document after load (`--dump-dom`).
    dom: String,
    /// Console messages: page errors ("Uncaught …"), blocked outside fetches ("Loading the
    /// stylesheet '…' violates the following Content Security Policy directive"), and
    /// whatever a script logs.
    console: Vec<String>,
    /// The requests the local server answered.
    requests: Vec<Request>,
}

impl PageLoad {
    /// The page's text: the DOM without its tags, the entities the serializer writes
    /// decoded, and runs of white space as one space.
    fn text(&self) -> String {
        let body = self
            .dom
            .split_once("<body")
            .map_or(self.dom.as_str(), |(_, b)| b);
        let mut text = String::with_capacity(body.len());
        let mut in_tag = true; // the rest of `<body …>`
        for c in body.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => {
                    in_tag = false;
                    text.push(' ');
                }
                _ if !in_tag => text.push(c),
                _ => {}
            }
        }
        let text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", " ")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

fn load(chromium: &Chromium, html: String) -> PageLoad {
    let server = Server::start(html);
    let profile = tempfile::tempdir().expect("profile folder");
    let mut command = chromium.command(profile.path());
    command
        .arg("--enable-logging=stderr")
        .arg("--v=0")
        .arg("--dump-dom")
        .arg(server.url());
    let output = chromium
        .run(command, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chromium failed ({}): {stderr}",
        output.status
    );
    PageLoad {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
        requests: server.requests(),
    }
}

/// Text as a reader sees it: white space runs as one space.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_html_report_renders_in_chromium_with_every_finding_and_nothing_from_outside() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let report = escher_sample_report::sample_report();
    let html = escher_scan::render_html(&report).expect("render the report");
    let page = load(&chromium, html);

    assert!(page.console.is_empty(), "console: {:#?}", page.console);
    let pages: Vec<&Request> = page.requests.iter().filter(|r| r.target == PAGE).collect();
    assert_eq!(
        pages.len(),
        1,
        "the report was served once: {:?}",
        page.requests
    );
    assert_eq!(pages[0].method, "GET");

    let text = page.text();
    assert!(
        text.contains(&format!("Escher morning report — {}", report.report_date)),
        "{text}"
    );
    for section in [
        "Security and compliance",
        "Optimisation opportunities",
        "Operational health",
    ] {
        assert!(text.contains(section), "section {section} in: {text}");
    }
    assert!(report.findings.len() >= 8, "{}", report.findings.len());
    for finding in &report.findings {
        assert!(
            text.contains(&words(&finding.title)),
            "title {:?} in: {text}",
            finding.title
        );
        assert!(!finding.command.is_empty(), "{}", finding.key);
        assert!(
            text.contains(&words(&finding.command)),
            "command {:?} in: {text}",
            finding.command
        );
        for question in &finding.questions {
            assert!(text.contains(&words(question)), "question {question:?}");
        }
    }
    // The name with `<` and `&` is text on the page, not markup.
    assert!(
        text.contains("S3 bucket logs-<team>&co is public"),
        "{text}"
    );
    assert!(!page.dom.contains("<team>"), "escaped in the document");
    for block in [
        "Fixed automatically (pre-approved)",
        "remediated: Bucket customer-exports now blocks all public access",
        &format!(
            "Changes since {}",
            report.deltas.previous_report.expect("previous")
        ),
        "S3 bucket old-website-assets is public",
        "Not scanned",
        "ap-south-1 ebs: DescribeVolumes on ap-south-1 failed: UnauthorizedOperation",
        "Cost summary",
        "Daily cost: ",
        "Top services this month",
        "Critical alerts since",
        "Revoked tcp/22 from 0.0.0.0/0 on sg-0a1b2c3d4e5f60718",
        "Instance i-0abc123def4567890 changed state to stopped",
    ] {
        assert!(text.contains(block), "{block:?} in: {text}");
    }
}

#[test]
fn the_render_check_sees_script_errors_console_errors_and_outside_requests() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let html = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="https://fonts.example.com/css?family=Inter">
<link rel="stylesheet" href="http://cdn.example.com/report.css">
</head><body><h1>Broken</h1>
<script>console.error("a console error"); notDefinedAnywhere();</script>
</body></html>"#;
    let page = load(&chromium, html.to_string());
    for blocked in [
        "Loading the stylesheet 'https://fonts.example.com/css?family=Inter' violates",
        "Loading the stylesheet 'http://cdn.example.com/report.css' violates",
    ] {
        assert!(
            page.console.iter().any(|l| l.contains(blocked)),
            "{blocked:?} in {:#?}",
            page.console
        );
    }
    assert!(
        page.console.iter().any(|l| l.contains("a console error")),
        "{:#?}",
        page.console
    );
    assert!(
        page.console
            .iter()
            .any(|l| l.contains("Uncaught ReferenceError: notDefinedAnywhere")),
        "{:#?}",
        page.console
    );
    assert!(page.text().contains("Broken"), "{}", page.text());
}
