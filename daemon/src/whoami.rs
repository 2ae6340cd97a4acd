//! The demo's app: a tiny HTTP server that answers every request with a page listing the
//! identity headers it received, so a new user sees what gatehouse sends to an app.
//!
//! It trusts whatever reaches it, exactly like the apps gatehouse protects; that is the point
//! of the demonstration. It listens on a loopback port only the gateway is told about.

use std::fmt::Write as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Headers the page calls out, in the order shown.
const IDENTITY: [&str; 4] = [
    "Remote-User",
    "Remote-Name",
    "Remote-Email",
    "Remote-Groups",
];

/// Serves the whoami page on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = handle(stream).await;
        });
    }
}

async fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Read one request head (the demo app ignores bodies and answers with its page).
        let head_end = loop {
            if let Some(end) = find_head_end(&buf) {
                break end;
            }
            if buf.len() > 64 * 1024 {
                return Ok(());
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let body_len = content_length(&head);
        let needed = head_end + body_len;
        while buf.len() < needed {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..needed);
        let page = render(&head);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\n\r\n{page}",
            page.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render(head: &str) -> String {
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    let user = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Remote-User"))
        .map(|(_, v)| *v);
    let mut page = String::with_capacity(2048);
    page.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>whoami — gatehouse demo</title><style>\
         body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;\
         line-height:1.5;color:#1b1b1b}table{border-collapse:collapse;width:100%}\
         td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;word-break:break-all}\
         th{background:#f2f2f2}code{background:#f2f2f2;padding:0 .2rem}</style></head><body>\
         <h1>whoami</h1>",
    );
    match user {
        Some(u) => {
            let _ = write!(
                page,
                "<p>This app trusts the identity header gatehouse sent: you are \
                 <strong>{}</strong>.</p>",
                escape(u)
            );
        }
        None => page.push_str(
            "<p>No <code>Remote-User</code> header reached the app: this request came through \
             a public path.</p>",
        ),
    }
    page.push_str(
        "<h2>Identity headers the app received</h2><table><tr><th>header</th><th>value</th></tr>",
    );
    for name in IDENTITY {
        let value = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| escape(v))
            .unwrap_or_else(|| "<em>(not sent)</em>".into());
        let _ = write!(page, "<tr><td>{name}</td><td>{value}</td></tr>");
    }
    page.push_str("</table><h2>The whole request</h2><table>");
    let _ = write!(
        page,
        "<tr><th colspan=\"2\"><code>{}</code></th></tr>",
        escape(request_line)
    );
    for (n, v) in &headers {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(n),
            escape(v)
        );
    }
    page.push_str(
        "</table><p>Try sending your own <code>Remote-User</code> header with curl: gatehouse \
         removes it before the app sees it.</p>\
         <p><a href=\"/_gatehouse/account\">Your account</a> (app passwords for music apps, \
         your password) &middot; <a href=\"/_gatehouse/logout\">Log out</a></p></body></html>",
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_the_user_and_escapes_what_it_echoes() {
        let head =
            "GET /x HTTP/1.1\r\nHost: a\r\nRemote-User: <alice>\r\nRemote-Groups: admins\r\n\r\n";
        let page = render(head);
        assert!(page.contains("you are <strong>&lt;alice&gt;</strong>"));
        assert!(page.contains("<td>Remote-Groups</td><td>admins</td>"));
        assert!(!page.contains("<alice>"));
        assert!(page.contains("<a href=\"/_gatehouse/account\">Your account</a>"));
    }

    #[test]
    fn without_an_identity_header_the_page_says_so() {
        let page = render("GET /share/x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(page.contains("No <code>Remote-User</code> header reached the app"));
    }
}
