//! Values as people write and read them: byte sizes (`10MiB`) and UTC calendar times.

pub mod civil_time;
pub mod size;
