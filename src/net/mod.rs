//! Sockets and their protocol logic.

pub mod buffer;
pub mod connect_race;
pub mod errors;
pub mod resolve;
pub mod sockopt;
pub mod tcp;
pub mod tls;
pub mod udp;
