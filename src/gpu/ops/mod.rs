//! One launcher per kernel: checks shapes, fills the uniform parameters, dispatches.

pub(crate) mod activation;
pub(crate) mod batch_norm;
pub(crate) mod bias;
pub(crate) mod conv2d;
pub(crate) mod dropout;
pub(crate) mod linear;
pub(crate) mod loss;
pub(crate) mod optim;
pub(crate) mod pool;
pub(crate) mod sum_chunks;
