//! Small layers with PyTorch's parameter names and layouts, so a checkpoint loads into the
//! equivalent PyTorch modules (`nn.Linear`: `weight [out, in]`, `bias [out]`; `nn.GRUCell`:
//! `weight_ih [3H, in]`, `weight_hh [3H, H]`, gates in r, z, n order).

use gradplan_config::Activation;
use tch::nn::{self, Module};
use tch::Tensor;

/// Applies the configured activation.
pub fn activate(act: Activation, x: &Tensor) -> Tensor {
    match act {
        Activation::Relu => x.relu(),
        Activation::Elu => x.elu(),
        Activation::Tanh => x.tanh(),
    }
}

/// `torch.nn.Linear`.
pub fn linear(vs: nn::Path, inputs: i64, outputs: i64) -> nn::Linear {
    nn::linear(vs, inputs, outputs, Default::default())
}

/// `torch.nn.GRUCell(inputs, hidden)`, with PyTorch's initialisation U(-1/√H, 1/√H).
#[derive(Debug)]
pub struct GruCell {
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
}

impl GruCell {
    pub fn new(vs: nn::Path, inputs: i64, hidden: i64) -> Self {
        let k = 1.0 / (hidden as f64).sqrt();
        let init = nn::Init::Uniform { lo: -k, up: k };
        GruCell {
            weight_ih: vs.var("weight_ih", &[3 * hidden, inputs], init),
            weight_hh: vs.var("weight_hh", &[3 * hidden, hidden], init),
            bias_ih: vs.var("bias_ih", &[3 * hidden], init),
            bias_hh: vs.var("bias_hh", &[3 * hidden], init),
        }
    }

    /// # Shapes
    /// `x: [B, in]`, `h: [B, H]` → `[B, H]`.
    pub fn forward(&self, x: &Tensor, h: &Tensor) -> Tensor {
        x.gru_cell(h, &self.weight_ih, &self.weight_hh, Some(&self.bias_ih), Some(&self.bias_hh))
    }
}

/// A multi-layer perceptron `fc1 … fcN` with the activation between layers (none after the
/// last), named like a PyTorch module with attributes `fc1`, `fc2`, ….
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    act: Activation,
}

impl Mlp {
    /// `sizes = [in, hidden…, out]`.
    pub fn new(vs: nn::Path, sizes: &[i64], act: Activation) -> Self {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| linear(&vs / format!("fc{}", i + 1), w[0], w[1]))
            .collect();
        Mlp { layers, act }
    }

    /// # Shapes
    /// `[…, in]` → `[…, out]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x);
            if i + 1 < self.layers.len() {
                x = activate(self.act, &x);
            }
        }
        x
    }
}
