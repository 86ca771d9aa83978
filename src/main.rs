//! The `wgcnn` command line.

fn main() {
    env_logger::init();
}
