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


class Optimizer:
    def __init__(self, params, lr):
        self.params = _check_params(params)
        self.lr = _check_nonneg(lr, "lr")

    def zero_grad(self):
        for p in self.params:
            p.grad.fill(0)

    def step(self):
        raise NotImplementedError


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


class StepLR:
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

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, int(step_size), float(gamma)
        self.base_lr = optimizer.lr
        self.count = 0

    def step(self):
        self.count += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.count // self.step_size)


class CosineAnnealingLR:
    """Cosine decay from the initial learning rate to ``eta_min`` over ``T_max`` steps.

    ``lr_t = eta_min + (lr_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2``.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.optimizer, self.T_max, self.eta_min = optimizer, max(1, int(T_max)), float(eta_min)
        self.base_lr = optimizer.lr
        self.count = 0

    def step(self):
        self.count = min(self.count + 1, self.T_max)
        cos = (1 + math.cos(math.pi * self.count / self.T_max)) / 2
        self.optimizer.lr = self.eta_min + (self.base_lr - self.eta_min) * cos
