"""Branch-Train-MiX (BTX; Sukhbaatar et al., arXiv 2403.07816): mix dense expert LLMs into one MoE LLM.

1. Branch (``branch``): copy a seed LLM once per domain.
2. Train: each copy is trained on its own domain, with no communication between copies.
3. MiX (``mix``): in every layer the experts' feed-forward networks become the experts of a sparse MoE layer
   with a new router, ``FF(x) = sum_i softmax(TopK(W x))_i FF_i(x)``, top-2; all other parameters are averaged
   element-wise. The result is a standard Hugging Face ``MixtralForCausalLM`` checkpoint.
4. MoE fine-tuning of the whole model with the load-balancing loss ``alpha * N * sum_i u_i p_i``
   (``load_balancing_loss``; the training loss is ``system2.lm.losses.make_moe_sft_loss_fn``).

Confirmed by the paper's abstract: FFNs become experts and all remaining parameters are averaged; BTX
generalises Branch-Train-Merge (no MoE fine-tuning) and sparse upcycling (no asynchronous expert training).
Reported by secondary sources only: top-2 routing, the load-balancing loss and alpha = 0.01, 4 experts in
the final model. Unconfirmed, and options here: the router initialisation (``router_init``: random or
domain mean hidden states), whether the 4th expert is the seed's FFN (``include_seed_expert``), the
normalisation of the usage fractions under top-2 and whether the loss is averaged or summed over layers
(``system2.lm.moe``), and whether the seed takes part in the averages (here it does not).
"""

from system2.btx.branch import branch
from system2.btx.mix import mix
from system2.btx.router_init import mean_moe_inputs
from system2.lm.moe import expert_usage, load_balancing_loss, route

__all__ = ["branch", "expert_usage", "load_balancing_loss", "mean_moe_inputs", "mix", "route"]
