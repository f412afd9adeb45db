//! How the process is tuned for speed and memory, apart from what it serves: threads that poll
//! briefly before they sleep ([`busy_poll`]) and a heap that keeps transfer chunks ([`heap`]).

pub mod busy_poll;
pub mod heap;
