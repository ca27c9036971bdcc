//! A real SMTP listener on loopback that captures the server's mail.
//!
//! The SMTP dialogue is `mailin`'s state machine and the messages are read
//! with `mail-parser`. What stays hand-written is the small tokio accept
//! loop around them, because tests steer it in ways no embeddable server
//! offers: close the port and cut live connections on purpose
//! ([`MailServer::shutdown`]), come back on the same port
//! ([`MailServer::start_on`]), and hold a mail's "250 OK" mid-send
//! ([`MailServer::hold_replies`]). `mailin-embedded` runs a blocking thread
//! pool that can neither be stopped nor told to cut its sessions.
// Not every test uses every helper.
#![allow(dead_code)]

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use mail_parser::{Message, MessageParser, PartType};
use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

/// One mail as the listener received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
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
    // After `shutdown`: the port, bound but not listening (connections are
    // refused), so that nothing else takes it before `restart`.
    reserved: Mutex<Option<TcpSocket>>,
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
    /// A listener on a free loopback port.
    pub async fn start() -> MailServer {
        Self::start_on(0).await.expect("bind SMTP test server")
    }

    /// A listener on `port` (0: any free one); to come back after
    /// [`Self::shutdown`], [`Self::restart`].
    pub async fn start_on(port: u16) -> io::Result<MailServer> {
        let socket = reusable_socket()?;
        socket.bind(([127, 0, 0, 1], port).into())?;
        let listener = socket.listen(128)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            arrived: watch::Sender::new(0),
            listener: Mutex::new(Some(listener)),
            reserved: Mutex::new(None),
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

    /// The URL to give sesame as its SMTP transport.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail captured so far, in arrival order.
    pub fn messages(&self) -> Vec<CapturedMail> {
        lock(&self.shared.mails).clone()
    }

    /// Waits until at least `count` mails arrived; all of them.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<CapturedMail> {
        let what = format!("{count} mail(s)");
        self.wait_until(timeout, &what, |m| (m.len() >= count).then(|| m.to_vec()))
            .await
    }

    /// The `nth` (1-based) mail to `rcpt`, matching envelope recipients
    /// case-insensitively.
    pub async fn wait_for_mail_to(
        &self,
        rcpt: &str,
        nth: usize,
        timeout: Duration,
    ) -> CapturedMail {
        assert!(nth >= 1, "wait_for_mail_to: nth is 1-based");
        let what = format!("mail #{nth} to {rcpt}");
        self.wait_until(timeout, &what, |mails| {
            let mut to_rcpt = mails.iter().filter(|m| m.is_to(rcpt));
            to_rcpt.nth(nth - 1).cloned()
        })
        .await
    }

    /// The mails to `rcpt` captured so far.
    pub fn mails_to(&self, rcpt: &str) -> Vec<CapturedMail> {
        let mails = lock(&self.shared.mails);
        mails.iter().filter(|m| m.is_to(rcpt)).cloned().collect()
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
    /// The port stays taken (bound, not listening) until [`Self::restart`]:
    /// freed, another test's socket could take it meanwhile.
    pub fn shutdown(&self) {
        let reserved = reusable_socket()
            .and_then(|socket| {
                socket
                    .bind(([127, 0, 0, 1], self.port).into())
                    .map(|_| socket)
            })
            .unwrap_or_else(|e| panic!("keeping SMTP port {} reserved: {e}", self.port));
        *lock(&self.shared.reserved) = Some(reserved);
        lock(&self.shared.listener).take();
        self.accept_task.abort(); // dropping its JoinSet aborts every session
    }

    /// A new listener on the port of this stopped server, capturing afresh;
    /// then the port's reservation is let go.
    pub async fn restart(&self) -> MailServer {
        let again = Self::start_on(self.port)
            .await
            .unwrap_or_else(|e| panic!("re-binding SMTP port {}: {e}", self.port));
        lock(&self.shared.reserved).take();
        again
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

/// A loopback socket that may share its port with the other sockets made
/// here: a listener and the reservation that outlives it (SO_REUSEPORT), and
/// rebinding while old connections sit in TIME_WAIT (SO_REUSEADDR).
pub fn reusable_socket() -> io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    Ok(socket)
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

/// Collects one transaction for `mailin`'s state machine; the session loop
/// takes a finished mail out of `finished` before it answers the final dot.
#[derive(Default)]
struct Collector {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    finished: Arc<Mutex<Option<CapturedMail>>>,
}

impl Handler for Collector {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        (self.from, self.to, self.data) = (from.to_owned(), to.to_vec(), Vec::new());
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        *lock(&self.finished) = Some(CapturedMail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            // Lossy because 8BITMIME bodies need not be UTF-8.
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        });
        mailin::response::OK
    }
}

async fn session(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    // No STARTTLS, no AUTH: lettre's plain `smtp://` transport must stay on the plain path.
    let collector = Collector::default();
    let finished = collector.finished.clone();
    let mut smtp =
        SessionBuilder::new("localhost").build(IpAddr::V4(Ipv4Addr::LOCALHOST), collector);
    wr.write_all(&smtp.greeting().buffer()?).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if rd.read_until(b'\n', &mut line).await? == 0 {
            return Ok(()); // hung up without QUIT, as lettre's pool may do
        }
        let reply = smtp.process(&line);
        let mail = lock(&finished).take();
        if let Some(mail) = mail {
            hold_while_asked(shared).await;
            let mut mails = lock(&shared.mails);
            mails.push(mail);
            shared.arrived.send_replace(mails.len());
            // The "250 OK" goes out only now, so a client that saw success can rely on `messages()`.
        }
        if reply.action != Action::NoReply {
            wr.write_all(&reply.buffer()?).await?;
        }
        if reply.action == Action::Close {
            return Ok(());
        }
    }
}

async fn hold_while_asked(shared: &Shared) {
    if *shared.hold.borrow() {
        shared.held.send_modify(|n| *n += 1);
        let mut hold = shared.hold.subscribe();
        let _ = hold.wait_for(|held| !*held).await;
        shared.held.send_modify(|n| *n -= 1);
    }
}

// ---------------------------------------------------------------- reading a mail

impl CapturedMail {
    fn is_to(&self, rcpt: &str) -> bool {
        self.to.iter().any(|t| t.eq_ignore_ascii_case(rcpt))
    }

    fn parsed(&self) -> Message<'_> {
        MessageParser::default()
            .parse(self.data.as_bytes())
            .unwrap_or_else(|| panic!("not a mail:\n{}", self.data))
    }

    /// The decoded subject ("" if none).
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    /// The decoded text/plain part. Panics, showing the raw mail, if there is
    /// none: callers are about to search that text, and "code not found"
    /// would hide why.
    pub fn text_body(&self) -> String {
        self.part(|body| matches!(body, PartType::Text(_)))
            .unwrap_or_else(|| panic!("no text/plain part in:\n{}", self.data))
    }

    /// The decoded text/html part, if the mail has one.
    pub fn html_body(&self) -> Option<String> {
        self.part(|body| matches!(body, PartType::Html(_)))
    }

    fn part(&self, wanted: impl Fn(&PartType<'_>) -> bool) -> Option<String> {
        let message = self.parsed();
        let part = message.parts.iter().find(|p| wanted(&p.body))?;
        part.text_contents().map(str::to_owned)
    }

    /// The 6-digit code in the text part.
    pub fn code(&self) -> String {
        find_six_digit_code(&self.text_body())
            .unwrap_or_else(|| panic!("no 6-digit code in:\n{}", self.text_body()))
    }

    /// The `name` query parameter of the first link in the text part that has one.
    pub fn link_param(&self, name: &str) -> String {
        find_query_param(&self.text_body(), name)
            .unwrap_or_else(|| panic!("no link with `{name}` in:\n{}", self.text_body()))
    }
}

// ---------------------------------------------------------------- body helpers

/// Six digits glued to no letter or digit, so hex tokens and longer numbers don't match.
pub fn find_six_digit_code(text: &str) -> Option<String> {
    let mut words = text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_');
    words
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
}

/// The `name` parameter of the first URL in `text` that carries it; reads
/// `&amp;`-escaped separators too, so it works on html bodies as well.
pub fn find_query_param(text: &str, name: &str) -> Option<String> {
    let is_end = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>');
    text.match_indices("://").find_map(|(i, _)| {
        let scheme = text[..i].rfind(|c: char| !c.is_ascii_alphanumeric() && c != '+');
        let rest = &text[scheme.map_or(0, |at| at + 1)..];
        let link = &rest[..rest.find(is_end).unwrap_or(rest.len())];
        let url = url::Url::parse(&link.replace("&amp;", "&")).ok()?;
        let mut pairs = url.query_pairs();
        pairs.find_map(|(k, v)| (k == name).then(|| v.into_owned()))
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
    fn a_quoted_printable_body_is_decoded() {
        let m = mail(
            "Content-Transfer-Encoding: quoted-printable\r\n\r\nhttps://x/?t=3Dab=\r\ncd caf=C3=A9=\n!",
        );
        assert_eq!(m.text_body(), "https://x/?t=abcd café!");
    }

    #[test]
    fn text_and_html_parts_are_found_in_a_multipart_mail() {
        let data = "Content-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\r\nCode: 123456\r\n--b1\r\n\
            Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+Q29k\r\nZTwvYj4=\r\n--b1--\r\n";
        assert_eq!(mail(data).text_body(), "Code: 123456");
        assert_eq!(mail(data).code(), "123456");
        assert_eq!(mail(data).html_body().as_deref(), Some("<b>Code</b>"));
        assert_eq!(mail("Subject: x\r\n\r\nplain\r\n").html_body(), None);
    }

    #[test]
    fn encoded_word_subjects_are_decoded() {
        // B and Q words folded over two lines: the whitespace between them must vanish.
        let m = mail(
            "To: b@x\r\nSubject: =?utf-8?b?VsOpcmlm?=\r\n =?UTF-8?Q?y_it=3F_=5F?= now\r\n\r\nbody",
        );
        assert_eq!(m.subject(), "Vérify it? _ now");
    }

    #[test]
    fn codes_and_link_parameters_are_found_in_bodies() {
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
    async fn the_listener_captures_two_mails_on_one_connection_and_closes_on_shutdown() {
        let server = MailServer::start().await;
        let addr = ("127.0.0.1", server.port());
        let mut c = TcpStream::connect(addr).await.unwrap();
        let script = [
            ("", "220 "),
            ("EHLO me\r\n", "250-"),
            ("DATA\r\n", "503"),
            ("MAIL FROM:<a@x> BODY=8BITMIME\r\n", "250"),
            ("RCPT TO:<Bob@X>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: one\r\n\r\n..dot\r\n.\r\n", "250"),
            // lettre reuses connections: a second transaction on the same socket.
            ("RSET\r\n", "250"),
            ("NOOP\r\n", "250"),
            ("MAIL FROM:<c@x>\r\n", "250"),
            ("RCPT TO:<bob@x>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: two\r\n\r\n.\r\n", "250"),
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
            ("c@x", "two")
        );

        server.shutdown();
        assert!(TcpStream::connect(addr).await.is_err());
        // While it is down the port stays taken: a socket not made to share
        // it cannot bind it (nor will the kernel hand it out for port 0).
        let other = TcpSocket::new_v4().unwrap();
        assert!(other.bind(([127, 0, 0, 1], server.port()).into()).is_err());
        let again = server.restart().await;
        assert!(TcpStream::connect(addr).await.is_ok());
        assert!(again.messages().is_empty());
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for 1 mail(s); 0 mail(s) arrived")]
    async fn waiting_for_mail_times_out_with_a_clear_message() {
        let server = MailServer::start().await;
        server.wait_for(1, Duration::from_millis(50)).await;
    }
}
