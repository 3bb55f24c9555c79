//! Sockets and addresses: binding with classified errors, batched datagram
//! I/O that knows the local arrival address, and who holds a busy port.

mod batch;
pub(crate) mod holder;
mod socket;

pub(crate) use batch::Batch;
pub(crate) use holder::port_holder;
pub use holder::ProcessInfo;
#[cfg(test)]
pub(crate) use socket::bind_udp;
pub(crate) use socket::{bind_group, wake, BindError, BindErrorKind};
