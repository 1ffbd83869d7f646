"""`Module`: the base class that finds parameters, names them, and saves and loads their values."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from tinygrad_lite._tensor import RemovableHandle, Tensor


class StateDictError(ValueError, RuntimeError):
    """A state dict that does not fit the module: a ValueError, and a RuntimeError as PyTorch raises.

    `message` is what went wrong; `hint`, appended in `str()`, is how `load_state_dict` can be called instead
    (a caller with other arguments, such as `tinygrad_lite.load`, reports `message` alone).
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message + hint)
        self.message, self.hint = message, hint


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Parameter(Tensor):
    """A tensor that a Module lists in `parameters()` and `state_dict()`, as `torch.nn.Parameter`.

    `Parameter(t)` shares `t`'s data, and `requires_grad` defaults to True. A Parameter stays a parameter
    after `requires_grad_(False)` (a plain tensor attribute counts as one only while it requires grad).
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        super().__init__(np.empty(0, np.float32) if data is None else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _is_parameter(value: Any) -> bool:
    return isinstance(value, Parameter) or (isinstance(value, Tensor) and value.requires_grad)


class Module:
    """Base class for layers and models: subclasses set attributes and define `forward`.

    Parameters are the attributes that are `Parameter`s or tensors with `requires_grad=True`; buffers
    are tensors registered with `register_buffer`; submodules are the attributes that are Modules.
    Lists and tuples of parameters or modules count too, named `name.0`, `name.1`, ...
    Unlike `torch.nn.Module`, a subclass need not call `super().__init__()`.
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

    def _named_members(self, pick: Callable[[Module], Iterator[tuple[str, Any]]], prefix: str,
                       recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for module_name, module in modules:
            for name, value in pick(module):
                if id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{module_name}.{name}" if module_name else name), value

    def _own_parameters(self) -> Iterator[tuple[str, Tensor]]:
        return ((name, value) for name, value in self._members() if _is_parameter(value))

    def _own_buffers(self, persistent_only: bool = False) -> Iterator[tuple[str, Tensor]]:
        for name, persistent in self.__dict__.get("_buffer_names", {}).items():
            value = self.__dict__.get(name)
            if value is not None and (persistent or not persistent_only):
                yield name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every parameter, each shared tensor once, e.g. `layers.0.weight`."""
        return self._named_members(Module._own_parameters, prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every parameter, in definition order."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every buffer that is not None, persistent or not, each shared tensor once."""
        return self._named_members(Module._own_buffers, prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer that is not None."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def _check_new_name(self, op: str, name: Any) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{op}: name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{op}: name must be a non-empty string without '.', got {name!r}")

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Keep `tensor` as attribute `name`: not a parameter, but saved by `state_dict()` unless not persistent.

        Buffers hold state that is not trained, such as BatchNorm's running statistics. A buffer may be None
        (then it is left out of `state_dict()`); assigning to the attribute later replaces the buffer.
        """
        self._check_new_name("register_buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: buffer {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        buffers = self.__dict__.setdefault("_buffer_names", {})
        if name in self.__dict__ and name not in buffers:
            raise KeyError(f"register_buffer: attribute {name!r} already exists and is not a buffer")
        buffers[name] = bool(persistent)
        self.__dict__[name] = tensor

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        """Set attribute `name` to `param` (a Parameter, or None for an absent one such as `bias=False`)."""
        self._check_new_name("register_parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be an nn.Parameter or None, "
                            f"got {type(param).__name__}")
        setattr(self, name, param)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call `fn(module)` on every submodule, children first, then on this module (e.g. to initialise)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set `requires_grad` of every parameter, e.g. `requires_grad_(False)` to freeze a pretrained part.

        A frozen `Parameter` stays in `parameters()`; a plain tensor attribute drops out while it needs no grad.
        """
        for p in list(self.parameters()):
            p.requires_grad = requires_grad
        return self

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

    def _state_tensors(self) -> dict[str, Tensor]:
        """What `state_dict()` saves: per module, its parameters then its persistent buffers."""
        def own(module: Module) -> Iterator[tuple[str, Tensor]]:
            yield from module._own_parameters()
            yield from module._own_buffers(persistent_only=True)

        return dict(self._named_members(own, "", True))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter and persistent buffer name -> a copy of its values (a snapshot: training on does not change it)."""
        return {name: t.data.copy() for name, t in self._state_tensors().items()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the existing parameter and buffer arrays, in place.

        Every name and shape is checked before anything is copied, so on error the module is unchanged.
        """
        params = self._state_tensors()
        missing = [name for name in params if name not in state_dict]
        unexpected = [name for name in state_dict if name not in params]
        if strict and (missing or unexpected):
            raise StateDictError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} for {type(self).__name__}",
                " (pass strict=False to skip them)",
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
            if array.dtype.kind not in "biuf":  # complex would lose its imaginary part in the copy
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
