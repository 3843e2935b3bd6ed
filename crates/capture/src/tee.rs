//! A body that streams through untouched while a copy of its first bytes is kept for the
//! snapshot — never buffered whole before forwarding.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// What a tee saw.
#[derive(Debug, Default)]
pub struct Captured {
    /// The first `cap` bytes.
    pub bytes: Vec<u8>,
    /// All bytes that passed.
    pub size: u64,
    /// More passed than were kept.
    pub truncated: bool,
    /// The stream ended normally.
    pub complete: bool,
}

type Done = Box<dyn FnOnce(bool) + Send>;

/// Streams `inner`, keeping up to `cap` bytes in `seen`; calls `done(complete)` once, at the end
/// of the stream or when dropped early.
pub struct Tee<B> {
    inner: B,
    cap: usize,
    seen: Arc<Mutex<Captured>>,
    done: Option<Done>,
}

impl<B> Tee<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, cap: usize, seen: Arc<Mutex<Captured>>, done: Option<Done>) -> Self {
        Self { inner, cap, seen, done }
    }

    fn finish(&mut self, complete: bool) {
        if let Ok(mut s) = self.seen.lock() {
            s.complete = complete;
        }
        if let Some(d) = self.done.take() {
            d(complete);
        }
    }
}

impl<B> Drop for Tee<B> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tee<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let cap = self.cap;
                    if let Ok(mut s) = self.seen.lock() {
                        s.size += data.len() as u64;
                        let room = cap.saturating_sub(s.bytes.len());
                        s.bytes.extend_from_slice(&data[..data.len().min(room)]);
                        if data.len() > room {
                            s.truncated = true;
                        }
                    }
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
