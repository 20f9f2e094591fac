"""Reading a sweep: the Pareto front, the smallest point within the tolerance, the most accurate."""

from __future__ import annotations

from rapidnn.selection import most_accurate, pareto_front, search_order, smallest_within_tolerance


def test_pareto_and_smallest() -> None:
    pts = [{"energy_j": 1.0, "composed_accuracy": 0.90, "quality_loss": 0.01,
            "bits_per_neuron": 10, "weight_clusters": 4, "input_clusters": 4},
           {"energy_j": 2.0, "composed_accuracy": 0.95, "quality_loss": 0.002,
            "bits_per_neuron": 40, "weight_clusters": 16, "input_clusters": 16},
           {"energy_j": 3.0, "composed_accuracy": 0.94, "quality_loss": 0.003,
            "bits_per_neuron": 30, "weight_clusters": 8, "input_clusters": 16},
           {"energy_j": 4.0, "composed_accuracy": 0.96, "quality_loss": -0.001,
            "bits_per_neuron": 80, "weight_clusters": 32, "input_clusters": 32}]
    assert pareto_front(pts) == [0, 1, 3]
    assert smallest_within_tolerance(pts)["weight_clusters"] == 8
    assert smallest_within_tolerance(pts[:1]) is None
    assert most_accurate(pts)["weight_clusters"] == 32
    assert [p["weight_clusters"] for p in search_order(pts)] == [4, 8, 16, 32]
    assert most_accurate([]) is None
