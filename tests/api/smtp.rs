//! A real, minimal SMTP server on loopback that captures mail for end-to-end tests.
//!
//! Covers what lettre's plain `smtp://` transport does: no TLS, no AUTH; bodies assumed UTF-8.
// Not every test uses every helper.
#![allow(dead_code)]

use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedMail {
    pub from: String,
    pub to: Vec<String>,
    /// Raw DATA as received: dot-unstuffed, line endings kept.
    pub data: String,
}

/// Cheap to clone. The server lives until `shutdown` or the end of the test's runtime.
#[derive(Clone)]
pub struct MailServer {
    port: u16,
    shared: Arc<Shared>,
    accept_task: AbortHandle,
}

struct Shared {
    mails: Mutex<Vec<CapturedMail>>,
    // Bumped after each recorded mail so waiters wake on arrival instead of polling.
    arrived: watch::Sender<usize>,
    // Reachable from `shutdown` so the port closes synchronously, not whenever the
    // runtime gets round to dropping the aborted accept task.
    listener: Mutex<Option<TcpListener>>,
    // While true, a mail's data is read but its "250 OK" (and its capture) waits.
    hold: watch::Sender<bool>,
    // How many mails are being held right now.
    held: watch::Sender<usize>,
}

// A panic in one test thread must not turn every later lock into a confusing second panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MailServer {
    pub async fn start() -> MailServer {
        Self::start_on(0).await.expect("bind SMTP test server")
    }

    pub async fn start_on(port: u16) -> io::Result<MailServer> {
        let socket = TcpSocket::new_v4()?;
        // A restarted server must be able to rebind while old connections sit in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(([127, 0, 0, 1], port).into())?;
        let listener = socket.listen(128)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            arrived: watch::Sender::new(0),
            listener: Mutex::new(Some(listener)),
            hold: watch::Sender::new(false),
            held: watch::Sender::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(shared.clone())).abort_handle();
        Ok(MailServer {
            port,
            shared,
            accept_task,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<CapturedMail> {
        lock(&self.shared.mails).clone()
    }

    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<CapturedMail> {
        let what = format!("{count} mail(s)");
        self.wait_until(timeout, &what, |m| (m.len() >= count).then(|| m.to_vec()))
            .await
    }

    /// `nth` is 1-based; matches SMTP envelope recipients case-insensitively.
    pub async fn wait_for_mail_to(
        &self,
        rcpt: &str,
        nth: usize,
        timeout: Duration,
    ) -> CapturedMail {
        assert!(nth >= 1, "wait_for_mail_to: nth is 1-based");
        let what = format!("mail #{nth} to {rcpt}");
        self.wait_until(timeout, &what, |mails| {
            let mut to_rcpt = mails
                .iter()
                .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(rcpt)));
            to_rcpt.nth(nth - 1).cloned()
        })
        .await
    }

    /// From now on, reads each mail's data but holds its "250 OK" (and does
    /// not capture it) until [`MailServer::release`]: an email in mid-send.
    pub fn hold_replies(&self) {
        self.shared.hold.send_replace(true);
    }

    /// Answers (and captures) the held mails, and holds no more.
    pub fn release(&self) {
        self.shared.hold.send_replace(false);
    }

    /// Waits until `count` mails are held.
    pub async fn wait_until_holding(&self, count: usize, timeout: Duration) {
        let mut held = self.shared.held.subscribe();
        tokio::time::timeout(timeout, held.wait_for(|n| *n >= count))
            .await
            .unwrap_or_else(|_| {
                panic!("timed out after {timeout:?} waiting for {count} held mail(s)")
            })
            .expect("the mail server is alive");
    }

    /// Refuses new connections from now on and drops live sessions too, so a pooled
    /// client connection notices the outage instead of quietly delivering.
    pub fn shutdown(&self) {
        lock(&self.shared.listener).take();
        self.accept_task.abort(); // dropping its JoinSet aborts every session
    }

    async fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&[CapturedMail]) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut arrived = self.shared.arrived.subscribe();
        loop {
            // Mark seen *before* looking, so a mail landing in between still wakes us.
            arrived.borrow_and_update();
            if let Some(found) = check(&lock(&self.shared.mails)) {
                return found;
            }
            let woke = tokio::time::timeout_at(deadline, arrived.changed()).await;
            if woke.is_err() {
                let got: Vec<String> = self.messages().iter().map(describe).collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; {} mail(s) arrived:\n  {}",
                    got.len(),
                    got.join("\n  ")
                );
            }
        }
    }
}

fn describe(m: &CapturedMail) -> String {
    format!("from=<{}> to={:?} subject={:?}", m.from, m.to, m.subject())
}

async fn accept_loop(shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        let accepted = poll_fn(|cx| match lock(&shared.listener).as_ref() {
            Some(listener) => listener.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        });
        match accepted.await {
            None => return,
            Some(Ok((stream, _))) => {
                let shared = shared.clone();
                sessions.spawn(async move {
                    if let Err(e) = session(stream, &shared).await {
                        eprintln!("smtp test server: dropping connection: {e}");
                    }
                });
            }
            Some(Err(e)) => eprintln!("smtp test server: accept failed: {e}"),
        }
        while sessions.try_join_next().is_some() {}
    }
}

async fn session(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    wr.write_all(b"220 localhost ESMTP test\r\n").await?;
    let (mut from, mut to): (Option<String>, Vec<String>) = (None, Vec::new());
    loop {
        let Some(line) = read_line(&mut rd).await? else {
            return Ok(()); // hung up without QUIT, as lettre's pool may do
        };
        // ASCII uppercasing keeps byte offsets, so `line[n..]` lines up with `upper`.
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        if matches!(verb, "EHLO" | "HELO" | "RSET" | "MAIL") {
            (from, to) = (None, Vec::new());
        }
        let reply = match verb {
            // Deliberately no STARTTLS/AUTH: lettre must stay on the plain path.
            "EHLO" => "250-localhost\r\n250-8BITMIME\r\n250 SIZE 26214400",
            "HELO" => "250 localhost",
            "RSET" | "NOOP" => "250 OK",
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                from = Some(address(&line[10..]));
                "250 OK"
            }
            "RCPT" if upper.starts_with("RCPT TO:") && from.is_some() => {
                to.push(address(&line[8..]));
                "250 OK"
            }
            "MAIL" | "RCPT" => "501 Syntax error, or MAIL missing",
            "DATA" if from.is_none() || to.is_empty() => "503 Bad sequence of commands",
            "DATA" => {
                wr.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    let line = read_line(&mut rd)
                        .await?
                        .ok_or(io::ErrorKind::UnexpectedEof)?;
                    if chomp(&line) == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                if *shared.hold.borrow() {
                    shared.held.send_modify(|n| *n += 1);
                    let mut hold = shared.hold.subscribe();
                    let _ = hold.wait_for(|held| !*held).await;
                    shared.held.send_modify(|n| *n -= 1);
                }
                let mail = CapturedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                };
                let mut mails = lock(&shared.mails);
                mails.push(mail);
                shared.arrived.send_replace(mails.len());
                "250 OK" // only now, so a client that saw success can rely on `messages()`
            }
            "QUIT" => {
                wr.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 Command not implemented",
        };
        wr.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// One line including its terminator; lossy because 8BITMIME bodies need not be UTF-8,
/// and a line break can never split a UTF-8 sequence.
async fn read_line(rd: &mut (impl AsyncBufReadExt + Unpin)) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = rd.read_until(b'\n', &mut buf).await?;
    Ok((n > 0).then(|| String::from_utf8_lossy(&buf).into_owned()))
}

fn chomp(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// `<a@b> BODY=8BITMIME` -> `a@b`; parameters don't matter for capturing.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    let addr = match arg.strip_prefix('<') {
        Some(rest) => rest.split('>').next(),
        None => arg.split_whitespace().next(),
    };
    addr.unwrap_or("").to_string()
}

// ---------------------------------------------------------------- MIME decoding

impl CapturedMail {
    pub fn subject(&self) -> String {
        let top = Entity::parse(&self.data);
        top.header("subject")
            .map(decode_encoded_words)
            .unwrap_or_default()
    }

    /// Panics, showing the raw mail, if a multipart mail has no text/plain part:
    /// callers are about to search that text, and "code not found" would hide why.
    pub fn text_body(&self) -> String {
        let top = Entity::parse(&self.data);
        if !top.content_type().starts_with("multipart/") {
            return top.decoded_body();
        }
        find_part(&self.data, "text/plain")
            .unwrap_or_else(|| panic!("no text/plain part in:\n{}", self.data))
    }

    pub fn html_body(&self) -> Option<String> {
        find_part(&self.data, "text/html")
    }
}

struct Entity<'a> {
    headers: Vec<(String, String)>,
    body: &'a str,
}

impl<'a> Entity<'a> {
    fn parse(raw: &'a str) -> Self {
        let split = raw
            .split_once("\r\n\r\n")
            .or_else(|| raw.split_once("\n\n"));
        let (head, body) = split.unwrap_or((raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line); // unfolding keeps the whitespace
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
            }
        }
        Entity { headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }

    fn content_type(&self) -> String {
        let ct = self.header("content-type").unwrap_or("text/plain");
        ct[..ct.find(';').unwrap_or(ct.len())]
            .trim()
            .to_ascii_lowercase()
    }

    fn decoded_body(&self) -> String {
        let cte = self.header("content-transfer-encoding").unwrap_or("7bit");
        let bytes = match cte.to_ascii_lowercase().as_str() {
            "quoted-printable" => qp_decode(self.body, false),
            "base64" => base64_decode(self.body),
            _ => return self.body.to_string(), // 7bit, 8bit, binary
        };
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Depth-first, so a part is found whether it sits at the top or in nested multiparts
/// (e.g. multipart/mixed around multipart/alternative).
fn find_part(raw: &str, mime: &str) -> Option<String> {
    let entity = Entity::parse(raw);
    let ct = entity.content_type();
    if !ct.starts_with("multipart/") {
        return (ct == mime).then(|| entity.decoded_body());
    }
    let boundary = header_param(entity.header("content-type")?, "boundary")?;
    // Skip the preamble; a piece starting with "--" follows the closing delimiter. A part
    // begins after the rest of its delimiter line, and the line break before the next
    // delimiter belongs to that delimiter, not to the part.
    let delimiter = format!("--{boundary}");
    let parts = entity.body.split(&delimiter).skip(1);
    let mut parts = parts.take_while(|p| !p.starts_with("--"));
    parts.find_map(|part| find_part(chomp(part.split_once('\n')?.1), mime))
}

fn header_param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// RFC 2047. Adjacent words' bytes are joined before UTF-8 decoding because encoders may
/// split a character across words; whitespace between two encoded words is dropped.
fn decode_encoded_words(value: &str) -> String {
    let (mut out, mut rest, mut after_word) = (Vec::new(), value, false);
    while let Some(start) = rest.find("=?") {
        let (before, tail) = rest.split_at(start);
        let word = encoded_word(tail);
        if !(after_word && word.is_some() && before.trim().is_empty()) {
            out.extend_from_slice(before.as_bytes());
        }
        after_word = word.is_some();
        let (bytes, len) = word.unwrap_or_else(|| (b"=?".to_vec(), 2)); // not a word: literal text
        out.extend(bytes);
        rest = &tail[len..];
    }
    out.extend_from_slice(rest.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `=?charset?B|Q?text?=` at the start of `s`: decoded bytes and length consumed.
fn encoded_word(s: &str) -> Option<(Vec<u8>, usize)> {
    let mut fields = s[2..].splitn(3, '?');
    let (charset, encoding, tail) = (fields.next()?, fields.next()?, fields.next()?);
    let text = &tail[..tail.find("?=")?];
    let fields = [charset, encoding, text];
    if fields.iter().any(|f| f.contains(char::is_whitespace)) {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => base64_decode(text),
        "Q" | "q" => qp_decode(text, true),
        _ => return None,
    };
    Some((bytes, s.len() - tail.len() + text.len() + 2))
}

/// Quoted-printable; `q_encoding` adds RFC 2047's "underscore is a space" rule.
fn qp_decode(s: &str, q_encoding: bool) -> Vec<u8> {
    // Soft line breaks (`=` ending a line) join lines; everything else is `=XX`.
    let mut unfolded = s.replace("=\r\n", "").replace("=\n", "");
    if q_encoding {
        unfolded = unfolded.replace('_', " "); // before unescaping, so `=5F` stays `_`
    }
    hex_unescape(unfolded.strip_suffix('=').unwrap_or(&unfolded), b'=')
}

/// Lenient standard-alphabet base64: skips line breaks, stops at padding.
fn base64_decode(s: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        (acc, bits) = ((acc << 6) | u32::from(v), bits + 6);
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Replaces `<esc>XX` hex escapes with their byte; malformed escapes pass through as-is.
fn hex_unescape(s: &str, esc: u8) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|c| (*c as char).to_digit(16));
    let (mut out, mut i) = (Vec::with_capacity(b.len()), 0);
    while i < b.len() {
        let (byte, width) = match (b[i] == esc, hex(i + 1), hex(i + 2)) {
            (true, Some(h), Some(l)) => ((h * 16 + l) as u8, 3),
            _ => (b[i], 1),
        };
        out.push(byte);
        i += width;
    }
    out
}

// ---------------------------------------------------------------- body helpers

/// Six digits glued to no letter or digit, so hex tokens and longer numbers don't match.
pub fn find_six_digit_code(text: &str) -> Option<String> {
    let mut words = text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_');
    words
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
}

/// Also reads `&amp;`-escaped separators, so it works on html bodies as well.
pub fn find_query_param(text: &str, name: &str) -> Option<String> {
    let is_end = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '#');
    text.match_indices("://").find_map(|(i, _)| {
        let url = &text[i + 3..];
        let (_, query) = url[..url.find(is_end).unwrap_or(url.len())].split_once('?')?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.strip_prefix("amp;").unwrap_or(pair).split_once('=')?;
            (k == name).then(|| String::from_utf8_lossy(&hex_unescape(v, b'%')).into_owned())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn mail(data: &str) -> CapturedMail {
        CapturedMail {
            from: "a@x".into(),
            to: vec!["b@x".into()],
            data: data.into(),
        }
    }

    #[test]
    fn quoted_printable_soft_breaks_and_escapes() {
        let m = mail(
            "Content-Transfer-Encoding: quoted-printable\r\n\r\nhttps://x/?t=3Dab=\r\ncd caf=C3=A9=\n!",
        );
        assert_eq!(m.text_body(), "https://x/?t=abcd café!");
    }

    #[test]
    fn multipart_alternative_with_base64_html() {
        let data = "Content-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\r\nCode: 123456\r\n--b1\r\n\
            Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+Q29k\r\nZTwvYj4=\r\n--b1--\r\n";
        assert_eq!(mail(data).text_body(), "Code: 123456");
        assert_eq!(mail(data).html_body().as_deref(), Some("<b>Code</b>"));
        assert_eq!(mail("Subject: x\r\n\r\nplain\r\n").html_body(), None);
    }

    #[test]
    fn encoded_word_subjects() {
        // B and Q words folded over two lines: the whitespace between them must vanish.
        let m = mail(
            "To: b@x\r\nSubject: =?utf-8?b?VsOpcmlm?=\r\n =?UTF-8?Q?y_it=3F_=5F?= now\r\n\r\nbody",
        );
        assert_eq!(m.subject(), "Vérify it? _ now");
        assert_eq!(mail("Subject: a =? b\n\nbody").subject(), "a =? b");
        assert_eq!(decode_encoded_words("=?utf-8?q?x?= =?bogus"), "x =?bogus");
        // One character split across two words still decodes.
        assert_eq!(decode_encoded_words("=?utf-8?q?=C3?= =?utf-8?q?=A9?="), "é");
    }

    #[test]
    fn base64_decoder() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
        assert_eq!(base64_decode("YW\r\nJj"), b"abc");
        assert_eq!(base64_decode("+/8="), [0xfb, 0xff]);
    }

    #[test]
    fn body_helpers() {
        let code = find_six_digit_code("id 1234567, hex a123456b, code: 042133.");
        assert_eq!(code.as_deref(), Some("042133"));
        assert_eq!(find_six_digit_code("12345 and 1234567"), None);
        let html = r#"<a href="https://h/v?x=1&amp;token=a%2Bb%3D&y=2">go</a> https://h/?token=zz"#;
        assert_eq!(find_query_param(html, "token").as_deref(), Some("a+b="));
        assert_eq!(
            find_query_param("https://h/?a=1&token=ab cd", "token").as_deref(),
            Some("ab")
        );
        assert_eq!(find_query_param("token=1 https://h/?a=1", "token"), None);
    }

    /// Sends one command and asserts the reply's code.
    async fn cmd(conn: &mut TcpStream, text: &str, code: &str) {
        conn.write_all(text.as_bytes()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).await.unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with(code), "{text:?} got {reply:?}");
    }

    #[tokio::test]
    async fn protocol_session_outage_and_restart() {
        let server = MailServer::start().await;
        let addr = ("127.0.0.1", server.port());
        let mut c = TcpStream::connect(addr).await.unwrap();
        let script = [
            ("", "220 "),
            ("EHLO me\r\n", "250-localhost\r\n250-8BITMIME\r\n250 SIZE"),
            ("DATA\r\n", "503"),
            ("MAIL FROM:<a@x> BODY=8BITMIME\r\n", "250"),
            ("RCPT TO:<Bob@X>\r\n", "250"),
            ("DATA\n", "354"),
            ("Subject: one\r\n\r\n..dot\r\n.\r\n", "250"),
            // lettre reuses connections: a second transaction on the same socket.
            ("RSET\r\n", "250"),
            ("NOOP\r\n", "250"),
            ("MAIL FROM:<>\r\n", "250"),
            ("RCPT TO:<bob@x>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: two\r\n\r\n.\r\n", "250"),
            ("VRFY x\r\n", "502"),
            ("QUIT\r\n", "221"),
        ];
        for (line, code) in script {
            cmd(&mut c, line, code).await;
        }

        let got = server.wait_for(2, Duration::from_secs(5)).await;
        assert_eq!(
            (got[0].from.as_str(), got[0].data.as_str()),
            ("a@x", "Subject: one\r\n\r\n.dot\r\n")
        );
        let second = server
            .wait_for_mail_to("BOB@x", 2, Duration::from_secs(1))
            .await;
        assert_eq!(
            (second.from.as_str(), second.subject().as_str()),
            ("", "two")
        );

        server.shutdown();
        assert!(TcpStream::connect(addr).await.is_err());
        let again = MailServer::start_on(server.port()).await.unwrap();
        assert!(TcpStream::connect(addr).await.is_ok());
        assert!(again.messages().is_empty());
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for 1 mail(s); 0 mail(s) arrived")]
    async fn wait_for_times_out_with_a_clear_message() {
        let server = MailServer::start().await;
        server.wait_for(1, Duration::from_millis(50)).await;
    }
}
