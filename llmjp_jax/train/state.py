"""Train state (step, params, optimizer state, loss-spike statistics) as plain pytrees, with their shardings.

Parameters live as a pure dict (the NNX state of `Llama`), so checkpoints are
ordinary nested dicts of arrays and the model is rebuilt with `nnx.merge`.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from llmjp_jax.model import Llama, LlamaConfig
from llmjp_jax.parallel import param_shardings, replicated
from llmjp_jax.train.guard import init_guard


@dataclasses.dataclass(frozen=True)
class StateSpec:
    graphdef: nnx.GraphDef
    abstract: dict  # ShapeDtypeStructs carrying their shardings
    shardings: dict


def init_model(model_cfg: LlamaConfig, seed: int) -> Llama:
    return Llama(model_cfg, nnx.Rngs(params=seed))


def state_spec(model_cfg: LlamaConfig, tx: optax.GradientTransformation, mesh) -> StateSpec:
    """Shapes and shardings of the train state, without allocating it."""
    graphdef, abstract_params = nnx.split(nnx.eval_shape(lambda: init_model(model_cfg, 0)))
    params_sh = nnx.to_pure_dict(param_shardings(abstract_params, mesh))
    abstract_params = nnx.to_pure_dict(abstract_params)
    abstract_opt = jax.eval_shape(tx.init, abstract_params)
    opt_sh = optax.tree_map_params(tx, lambda _, s: s, abstract_opt, params_sh,
                                   transform_non_params=lambda _: replicated(mesh))
    guard = jax.eval_shape(init_guard)
    shardings = {"step": replicated(mesh), "params": params_sh, "opt_state": opt_sh,
                 "guard": jax.tree.map(lambda _: replicated(mesh), guard)}
    shapes = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": abstract_params,
              "opt_state": abstract_opt, "guard": guard}
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            shapes, shardings)
    return StateSpec(graphdef, abstract, shardings)


def init_state(model_cfg: LlamaConfig, tx: optax.GradientTransformation, spec: StateSpec,
               seed: int) -> dict:
    """Initialises the state directly in its sharded layout (no host copy of the full model)."""

    def init():
        params = nnx.to_pure_dict(nnx.state(init_model(model_cfg, seed)))
        return fresh_state(params, tx)

    return jax.jit(init, out_shardings=spec.shardings)()


def fresh_state(params: dict, tx: optax.GradientTransformation) -> dict:
    """Step 0 of a run from `params`: fresh optimizer state and loss-spike statistics."""
    return {"step": jnp.int32(0), "params": params, "opt_state": tx.init(params), "guard": init_guard()}
