import numpy as np
import pytest

from tinygrad_lite.optim import registry
from tinygrad_lite.surfaces import SURFACES

NUMPY_FORMULAS = {
    "beale": lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2,
    "rosenbrock": lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
    "himmelblau": lambda x, y: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
    "saddle": lambda x, y: x**2 - y**2,
    "ravine": lambda x, y: 0.05 * x**2 + 10 * y**2,
}


@pytest.mark.parametrize("name", SURFACES)
def test_values_match_the_formula_on_a_grid(name):
    surface = SURFACES[name]
    X, Y = np.meshgrid(np.linspace(*surface.xlim, 7), np.linspace(*surface.ylim, 5))
    np.testing.assert_allclose(surface.value(X, Y), NUMPY_FORMULAS[name](X, Y), rtol=1e-12)


@pytest.mark.parametrize("name", SURFACES)
def test_autograd_gradient_matches_central_differences(name):
    surface = SURFACES[name]
    rng = np.random.default_rng(0)
    h = 1e-6
    for _ in range(5):
        x, y = rng.uniform(*surface.xlim), rng.uniform(*surface.ylim)
        numeric = [(surface.value(x + h, y) - surface.value(x - h, y)) / (2 * h),
                   (surface.value(x, y + h) - surface.value(x, y - h)) / (2 * h)]
        np.testing.assert_allclose(surface.gradient(x, y), numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", SURFACES)
def test_known_minima_are_zero_and_stationary(name):
    surface = SURFACES[name]
    for mx, my in surface.minima + surface.saddle_points:
        assert abs(surface.value(mx, my)) < 1e-9
        np.testing.assert_allclose(surface.gradient(mx, my), 0, atol=1e-4)
    for mx, my in surface.minima:  # a minimum, not a maximum: every nearby point is higher
        for dx, dy in [(1e-2, 0), (-1e-2, 0), (0, 1e-2), (0, -1e-2)]:
            assert surface.value(mx + dx, my + dy) > surface.value(mx, my)


@pytest.mark.parametrize("name", SURFACES)
def test_default_start_and_minima_lie_in_the_window(name):
    surface = SURFACES[name]
    for px, py in (surface.start, *surface.minima):
        assert surface.xlim[0] <= px <= surface.xlim[1] and surface.ylim[0] <= py <= surface.ylim[1]
    assert set(surface.lr) == {"gd", "momentum", "rmsprop", "adam", "adamw"}
    assert all(name in registry.names() for name in surface.lr)


def test_distance_to_minimum_takes_the_nearest():
    himmelblau = SURFACES["himmelblau"]
    assert himmelblau.distance_to_minimum(3.0, 2.5) == pytest.approx(0.5)
    assert np.isnan(SURFACES["saddle"].distance_to_minimum(1.0, 1.0))
