"""`Module`: the base class that finds parameters, names them, and saves and loads their values."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from tinygrad_lite._tensor import RemovableHandle, Tensor


class StateDictError(ValueError, RuntimeError):
    """A state dict that does not fit the module: a ValueError, and a RuntimeError as PyTorch raises."""


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class for layers and models: subclasses set attributes and define `forward`.

    Parameters are the attributes that are tensors with `requires_grad=True`; submodules are the
    attributes that are Modules. Lists and tuples of either count too, named `name.0`, `name.1`, ...
    """

    training: bool = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self.forward(*args, **kwargs)
        hooks = self.__dict__.get("_forward_hooks")
        if hooks:
            for hook in list(hooks.values()):
                result = hook(self, args, output)
                if result is not None:
                    output = result
        return output

    def register_forward_hook(self, fn: Callable[[Module, tuple, Any], Any]) -> RemovableHandle:
        """Call `fn(module, inputs, output)` after every forward; a returned value replaces the output."""
        return RemovableHandle(self.__dict__.setdefault("_forward_hooks", {}), fn)

    # ---- traversal -----------------------------------------------------------------------------

    def _members(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    yield f"{name}.{i}", item
            else:
                yield name, value

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in self._members():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> Iterator[Module]:
        """The direct submodules."""
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every submodule below it, with dotted names."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every parameter, each shared tensor once, e.g. `layers.0.weight`."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, value in module._members():
                if isinstance(value, Tensor) and value.requires_grad and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{module_name}.{name}" if module_name else name), value

    def parameters(self) -> Iterator[Tensor]:
        """Every parameter, in definition order."""
        for _, p in self.named_parameters():
            yield p

    # ---- modes and grads -----------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set the `.training` flag here and below (Dropout reads it)."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """`train(False)`."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's grad: to None, or to zeros in place."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    # ---- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter name -> a copy of its values (a snapshot: training on does not change it)."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the existing parameter arrays, in place.

        Every name and shape is checked before anything is copied, so on error the module is unchanged.
        """
        params = dict(self.named_parameters())
        missing = [name for name in params if name not in state_dict]
        unexpected = [name for name in state_dict if name not in params]
        if strict and (missing or unexpected):
            raise StateDictError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                f"for {type(self).__name__} (pass strict=False to skip them)"
            )
        updates = []
        for name, value in state_dict.items():
            if name not in params:
                continue
            array = np.asarray(value.data if isinstance(value, Tensor) else value)
            target = params[name].data
            if array.shape != target.shape:
                raise StateDictError(
                    f"load_state_dict: {name} has shape {array.shape} in the state dict, "
                    f"but the model's parameter has shape {target.shape}"
                )
            if array.dtype.kind not in "iuf":  # complex would lose its imaginary part in the copy
                raise StateDictError(f"load_state_dict: {name} has dtype {array.dtype}; expected real numbers "
                                     "(integer or floating point)")
            updates.append((target, array))
        for target, array in updates:
            np.copyto(target, array, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    def __repr__(self) -> str:
        children = [f"  ({name}): {child!r}".replace("\n", "\n  ") for name, child in self.named_children()]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(children) + "\n)"

    def extra_repr(self) -> str:
        return ""
