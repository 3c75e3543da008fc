"""Optimisers (SGD with momentum/Nesterov/weight decay, Adam, AdamW) and learning-rate schedules.

The update rules are PyTorch's, so the same hyper-parameters give the same
trajectory. Each optimiser updates ``param.data`` in place from
``param.grad``; call ``model.zero_grad()`` (or ``optimizer.zero_grad()``)
between steps.
"""
import math

import numpy as np

__all__ = ["Adam", "AdamW", "CosineAnnealingLR", "SGD", "StepLR"]


def _check_params(params):
    params = list(params)
    if not params:
        raise ValueError("optimizer got an empty parameter list")
    for p in params:
        if not (hasattr(p, "data") and hasattr(p, "grad")):
            raise TypeError(f"optimizer parameters must be pyxconv.nn.Parameter, got "
                            f"{type(p).__name__}")
    return params


def _check_nonneg(value, name):
    value = float(value)
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _scalar(state, key, kind):
    """Read the 0-d entry ``key`` of a state dict as ``kind`` (float, int or str)."""
    if key not in state:
        raise ValueError(f"state dict has no entry {key!r}; it holds {sorted(state)}")
    value = np.asarray(state[key])
    if value.ndim != 0:
        raise ValueError(f"state dict entry {key!r} must be a scalar, got shape {value.shape}")
    return kind(value[()])


def _check_kind(state, expected):
    if not isinstance(state, dict) and not hasattr(state, "keys"):
        raise TypeError(f"state_dict must be a mapping, got {type(state).__name__}")
    kind = _scalar(state, "kind", str)
    if kind != expected:
        raise ValueError(f"state dict is for a {kind}, not a {expected}")


def _check_buffer(state, key, like):
    if key not in state:
        raise ValueError(f"state dict has no entry {key!r}")
    arr = np.asarray(state[key])
    if arr.shape != like.shape:
        raise ValueError(f"state dict entry {key!r} has shape {arr.shape}, "
                         f"the parameter has shape {like.shape}")
    return arr.astype(like.dtype, copy=True)


class Optimizer:
    def __init__(self, params, lr):
        self.params = _check_params(params)
        self.lr = _check_nonneg(lr, "lr")

    def zero_grad(self):
        for p in self.params:
            p.grad.fill(0)

    def step(self):
        raise NotImplementedError

    def _check_count(self, state):
        n = _scalar(state, "num_params", int)
        if n != len(self.params):
            raise ValueError(f"state dict is for {n} parameters, this optimizer has "
                             f"{len(self.params)}")


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

    With gradient ``g`` (plus ``weight_decay * w``), velocity ``v`` and
    learning rate ``lr``::

        v = momentum * v + (1 - dampening) * g     (v = g at the first step)
        d = g + momentum * v   if nesterov else v
        w = w - lr * d

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
    momentum : float, default 0
    dampening : float, default 0
    weight_decay : float, default 0
        L2 penalty coefficient.
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0``.

    Examples
    --------
    One step on ``w = 1`` with gradient 2 and ``lr = 0.1``:

    >>> import numpy as np
    >>> from pyxconv.nn import Parameter
    >>> from pyxconv.optim import SGD
    >>> w = Parameter(np.array([1.0])); w.grad[:] = 2.0
    >>> SGD([w], lr=0.1).step(); w.data
    array([0.8])
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, lr)
        self.momentum = _check_nonneg(momentum, "momentum")
        self.dampening = float(dampening)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay")
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        self._velocity = [None] * len(self.params)

    def step(self):
        lr, mom, wd = self.lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            g = p.grad
            if wd:
                g = g + wd * p.data
            if mom:
                v = self._velocity[i]
                if v is None:
                    v = self._velocity[i] = g.copy()
                else:
                    v *= mom
                    v += (1 - self.dampening) * g
                g = g + mom * v if self.nesterov else v
            p.data -= lr * g

    def state_dict(self):
        """The optimizer's state as a flat ``{name: numpy array}`` mapping.

        Holds the hyper-parameters (``lr`` among them, as a schedule left it)
        and one momentum buffer ``velocity.<i>`` per parameter that has one.
        Every value is a NumPy array, so the mapping saves with
        ``numpy.savez`` and loads back without pickle. The arrays are copies.

        Examples
        --------
        >>> import numpy as np
        >>> from pyxconv.nn import Parameter
        >>> from pyxconv.optim import SGD
        >>> w = Parameter(np.array([1.0])); w.grad[:] = 2.0
        >>> opt = SGD([w], lr=0.1, momentum=0.9); opt.step()
        >>> again = SGD([w], lr=0.5, momentum=0.9)
        >>> again.load_state_dict(opt.state_dict())
        >>> again.lr, again._velocity[0]
        (0.1, array([2.]))
        """
        state = {"kind": np.array("SGD"), "num_params": np.array(len(self.params)),
                 "lr": np.array(self.lr), "momentum": np.array(self.momentum),
                 "dampening": np.array(self.dampening),
                 "weight_decay": np.array(self.weight_decay),
                 "nesterov": np.array(self.nesterov)}
        for i, v in enumerate(self._velocity):
            if v is not None:
                state[f"velocity.{i}"] = v.copy()
        return state

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned (for the same parameter list).

        Raises ``ValueError`` naming the entry when the mapping is for another
        optimizer, another number of parameters or other shapes.
        """
        _check_kind(state, "SGD")
        self._check_count(state)
        velocity = [None] * len(self.params)
        for i, p in enumerate(self.params):
            key = f"velocity.{i}"
            if key in state:
                velocity[i] = _check_buffer(state, key, p.data)
        self.lr = _scalar(state, "lr", float)
        self.momentum = _scalar(state, "momentum", float)
        self.dampening = _scalar(state, "dampening", float)
        self.weight_decay = _scalar(state, "weight_decay", float)
        self.nesterov = _scalar(state, "nesterov", bool)
        self._velocity = velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with bias-corrected moment estimates.

    ::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        w = w - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
        Added to the gradient (L2, as ``torch.optim.Adam``; not AdamW).

    Examples
    --------
    The first Adam step moves each weight by about ``lr`` against the gradient's sign:

    >>> import numpy as np
    >>> from pyxconv.nn import Parameter
    >>> from pyxconv.optim import Adam
    >>> w = Parameter(np.array([1.0, 1.0])); w.grad[:] = [3.0, -0.5]
    >>> Adam([w], lr=0.1).step(); np.round(w.data, 6)
    array([0.9, 1.1])
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = (float(b) for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas = (b1, b2)
        self.eps = _check_nonneg(eps, "eps")
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay")
        self._m = [np.zeros_like(p.data) for p in self.params]
        self._v = [np.zeros_like(p.data) for p in self.params]
        self.t = 0

    _decoupled = False

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        c1 = 1 - b1 ** self.t
        c2 = 1 - b2 ** self.t
        step = self.lr / c1
        for p, m, v in zip(self.params, self._m, self._v):
            g = p.grad
            if self.weight_decay and self._decoupled:
                p.data *= 1 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v / c2)
            denom += self.eps
            p.data -= step * m / denom

    def state_dict(self):
        """The optimizer's state as a flat ``{name: numpy array}`` mapping.

        Holds the hyper-parameters, the step count ``t`` and the moment
        estimates ``m.<i>`` and ``v.<i>`` of every parameter (copies), all as
        NumPy arrays so that the mapping saves with ``numpy.savez``.

        Examples
        --------
        >>> import numpy as np
        >>> from pyxconv.nn import Parameter
        >>> from pyxconv.optim import Adam
        >>> w = Parameter(np.array([1.0])); w.grad[:] = 2.0
        >>> opt = Adam([w], lr=0.1); opt.step()
        >>> again = Adam([w]); again.load_state_dict(opt.state_dict())
        >>> again.t, again.lr
        (1, 0.1)
        """
        state = {"kind": np.array(type(self).__name__),
                 "num_params": np.array(len(self.params)),
                 "lr": np.array(self.lr), "betas": np.array(self.betas),
                 "eps": np.array(self.eps), "weight_decay": np.array(self.weight_decay),
                 "t": np.array(self.t)}
        for i, (m, v) in enumerate(zip(self._m, self._v)):
            state[f"m.{i}"] = m.copy()
            state[f"v.{i}"] = v.copy()
        return state

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned (for the same parameter list).

        Raises ``ValueError`` naming the entry when the mapping is for another
        optimizer, another number of parameters or other shapes.
        """
        _check_kind(state, type(self).__name__)
        self._check_count(state)
        m = [_check_buffer(state, f"m.{i}", p.data) for i, p in enumerate(self.params)]
        v = [_check_buffer(state, f"v.{i}", p.data) for i, p in enumerate(self.params)]
        betas = np.asarray(state.get("betas", ()), dtype=float)
        if betas.shape != (2,):
            raise ValueError(f"state dict entry 'betas' must hold 2 numbers, got {betas!r}")
        self.lr = _scalar(state, "lr", float)
        self.eps = _scalar(state, "eps", float)
        self.weight_decay = _scalar(state, "weight_decay", float)
        self.t = _scalar(state, "t", int)
        self.betas = (float(betas[0]), float(betas[1]))
        self._m, self._v = m, v


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    The weights shrink by ``lr * weight_decay`` of themselves before the Adam
    step, instead of the decay entering the gradient (and so being rescaled
    by Adam's per-weight step sizes, as in :class:`Adam`)::

        w = w * (1 - lr * weight_decay)
        w = w - lr * m_hat / (sqrt(v_hat) + eps)

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2
        PyTorch's default.

    Examples
    --------
    With a zero gradient only the decay acts:

    >>> import numpy as np
    >>> from pyxconv.nn import Parameter
    >>> from pyxconv.optim import AdamW
    >>> w = Parameter(np.array([1.0, -2.0]))
    >>> AdamW([w], lr=0.1, weight_decay=0.5).step(); w.data
    array([ 0.95, -1.9 ])
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class _Schedule:

    def state_dict(self):
        """The schedule position: ``{"kind", "base_lr", "count", ...}`` as NumPy arrays.

        The optimizer's current ``lr`` is in the optimizer's own state dict.
        """
        state = {"kind": np.array(type(self).__name__), "base_lr": np.array(self.base_lr),
                 "count": np.array(self.count)}
        for name in self._hyper:
            state[name] = np.array(getattr(self, name))
        return state

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned; ``ValueError`` if it is for another schedule."""
        _check_kind(state, type(self).__name__)
        values = {name: _scalar(state, name, type(getattr(self, name))) for name in self._hyper}
        self.base_lr = _scalar(state, "base_lr", float)
        self.count = _scalar(state, "count", int)
        for name, value in values.items():
            setattr(self, name, value)


class StepLR(_Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` calls of :meth:`step`.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.nn import Parameter
    >>> from pyxconv.optim import SGD, StepLR
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for _ in range(5):
    ...     sched.step(); lrs.append(opt.lr)
    >>> lrs
    [1.0, 0.5, 0.5, 0.25, 0.25]
    """

    _hyper = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, int(step_size), float(gamma)
        self.base_lr = optimizer.lr
        self.count = 0

    def step(self):
        self.count += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.count // self.step_size)


class CosineAnnealingLR(_Schedule):
    """Cosine decay from the initial learning rate to ``eta_min`` over ``T_max`` steps.

    ``lr_t = eta_min + (lr_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2``.
    """

    _hyper = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.optimizer, self.T_max, self.eta_min = optimizer, max(1, int(T_max)), float(eta_min)
        self.base_lr = optimizer.lr
        self.count = 0

    def step(self):
        self.count = min(self.count + 1, self.T_max)
        cos = (1 + math.cos(math.pi * self.count / self.T_max)) / 2
        self.optimizer.lr = self.eta_min + (self.base_lr - self.eta_min) * cos
