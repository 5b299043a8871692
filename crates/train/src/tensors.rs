//! Replay batches as model tensors.

use gradplan_model::{preprocess_frames, SequenceBatch};
use gradplan_replay::{Batch, BatchObs};
use tch::{Device, Tensor};

/// Moves a replay batch to `device` as a time-major [`SequenceBatch`]; pixel frames are
/// preprocessed to `bit_depth` bits, with dequantisation noise when `noise` (training).
pub fn batch_to_tensors(batch: &Batch, bit_depth: u32, device: Device, noise: bool) -> SequenceBatch {
    let (t, b, a) = (batch.time as i64, batch.batch as i64, batch.action_dim as i64);
    let obs = match &batch.obs {
        BatchObs::Pixels { height, width, data } => {
            let raw =
                Tensor::from_slice(data).view([t, b, *height as i64, *width as i64, 3]).to_device(device);
            preprocess_frames(&raw, bit_depth, noise)
        }
        BatchObs::State { dim, data } => Tensor::from_slice(data).view([t, b, *dim as i64]).to_device(device),
    };
    let flags = |v: &[bool]| {
        Tensor::from_slice(&v.iter().map(|&x| if x { 1.0f32 } else { 0.0 }).collect::<Vec<_>>())
            .view([t, b])
            .to_device(device)
    };
    SequenceBatch {
        obs,
        actions: Tensor::from_slice(&batch.actions).view([t, b, a]).to_device(device),
        rewards: Tensor::from_slice(&batch.rewards).view([t, b]).to_device(device),
        is_first: flags(&batch.is_first),
    }
}
