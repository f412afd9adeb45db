//! Admission bookkeeping, kept out of the acceptor so it is tested without sockets: the budget
//! of connections that have not logged in yet ([`prelogin`]) and the descriptors the process
//! may hold ([`descriptors`]). The acceptor (`actors::acceptor`) applies them.

pub mod descriptors;
pub mod prelogin;
pub mod slots;

pub use prelogin::{PreLoginBudget, Source};
pub use slots::{Claim, Slots};
