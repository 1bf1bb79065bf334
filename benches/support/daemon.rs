//! The real daemon as the benches run it: a release `firedrill serve` child process on
//! `127.0.0.1:0`, and a minimal HTTP/1.1 client for its API and `/metrics`.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{sys::signal, unistd::Pid};

pub const ACKED: &str = "firedrill_generator_orders_total{outcome=\"acked\"}";
pub const FAILED: &str = "firedrill_generator_orders_total{outcome=\"failed\"}";

/// The value of one series (name and labels exactly as exposed) in a `/metrics` body.
pub fn sample(body: &str, series: &str) -> f64 {
    try_sample(body, series).unwrap_or_else(|| panic!("{series} in /metrics"))
}

/// The value of one series, if the body has it.
pub fn try_sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A `firedrill serve` process; SIGTERM (then SIGKILL) when stopped or dropped.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `127.0.0.1:0` with `config` and `env`; its logs go to
    /// `target/bench/daemon-<name>.log`.
    pub fn start(name: &str, config: &Path, env: &[(&str, &str)]) -> Daemon {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        std::fs::create_dir_all(&dir).expect("create target/bench");
        let log = dir.join(format!("daemon-{name}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .args(["serve", "--config"])
            .arg(config)
            .env("FIREDRILL_HTTP__LISTEN", "127.0.0.1:0")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create the daemon log"))
            .spawn()
            .expect("start firedrill");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read firedrill's stdout");
        let Some(addr) = line
            .trim()
            .strip_prefix("firedrill listening on http://")
            .and_then(|a| a.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "firedrill did not start (first line {line:?}); its log {}:\n{}",
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        // Nothing else is expected on stdout, but a full pipe must never block the daemon.
        thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Daemon { child, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn status_field(&self, field: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status")
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    pub fn rss_mib(&self) -> f64 {
        let kib: f64 = self
            .status_field("VmRSS:")
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("VmRSS in kB");
        kib / 1024.0
    }

    /// utime + stime, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        super::cpu_ticks(&self.pid().to_string()).expect("/proc/PID/stat")
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = signal::kill(pid, signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("firedrill (pid {pid}) ignored SIGTERM for 30 s: SIGKILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// HTTP/1.1 GETs on one keep-alive connection; enough of the protocol for `/metrics`.
pub struct Http {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr).expect("connect to firedrill");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        Http {
            addr,
            reader: BufReader::with_capacity(256 * 1024, stream),
        }
    }

    /// GET `path`; panics unless the answer is 200 with a Content-Length body.
    pub fn get(&mut self, path: &str) -> String {
        self.request("GET", path, "")
    }

    /// `PUT /generator/rate` to `rate` orders/s.
    pub fn set_rate(&mut self, rate: u32) {
        self.request(
            "PUT",
            "/generator/rate",
            &format!("{{\"orders_per_second\": {rate}}}"),
        );
    }

    /// `method path` with a JSON `body`; panics unless the answer is 200 with a
    /// Content-Length body.
    pub fn request(&mut self, method: &str, path: &str, body: &str) -> String {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send request");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        assert!(
            line.starts_with("HTTP/1.1 200"),
            "{method} {path}: {line:?}"
        );
        let mut length = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.unwrap_or_else(|| panic!("GET {path}: no Content-Length"));
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        String::from_utf8(body).expect("UTF-8 body")
    }
}
