//! [`writes_through!`]: `AsyncWrite` for a stream wrapper that changes only how it reads.

/// Implements `tokio::io::AsyncWrite` for `$wrapper` by passing every call to its `$field`,
/// for wrappers that change only how a stream reads ([`PromptAck`](super::tls::PromptAck),
/// [`ControlStream`](super::control_stream::ControlStream)).
macro_rules! writes_through {
    ($wrapper:ty, $field:ident) => {
        impl tokio::io::AsyncWrite for $wrapper {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_shutdown(cx)
            }
        }
    };
}

pub(crate) use writes_through;
