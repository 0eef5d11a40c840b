"""Self-check questions of lessons 8 to 10 (SDE sampling, guidance, one step), keyed by the self-check's key.

Merged into ``checks.SELF_CHECKS`` (one line there), in a module of their own so that these
lessons and lessons 1 to 7 change apart. Every wrong answer has a hint that points at the idea.
"""

from __future__ import annotations

from .kit import Question

__all__ = ["SAMPLING_CHECKS"]

SAMPLING_CHECKS: dict[str, tuple[Question, ...]] = {
    "sdes": (
        Question(
            "The ODE dz = v dt and the SDE with noise 1, run from the same noise distribution, have …",
            ("the same marginals p_t, but different paths", "the same paths", "different marginals"),
            "the same marginals p_t, but different paths",
            "Every member of the family solves the same Fokker–Planck equation; only the paths differ.",
            hints={
                "the same paths": "Look at the bottom row: every step draws fresh noise, so each particle "
                "takes its own jagged route.",
                "different marginals": "The extra drift (g²/2)·∇log p_t cancels the spreading of the noise "
                "in the Fokker–Planck equation.",
            },
        ),
        Question(
            "A flow matching model has no score network. On the linear path its score is …",
            (
                "(t v − z)/(1 − t), from the velocity itself",
                "only available if a second network is trained by score matching",
                "zero: flows are deterministic",
            ),
            "(t v − z)/(1 − t), from the velocity itself",
            "v fixes E[z₀ | z_t] = z − t v, and Tweedie's formula gives ∇log p_t = −E[z₀ | z_t]/σ_t.",
            hints={
                "only available if a second network is trained by score matching": "z_t = t z₁ + (1 − t) z₀ "
                "ties the predictions of z₀, z₁, the velocity and the score: knowing one gives the others.",
                "zero: flows are deterministic": "The score is a property of p_t, not of the sampler: "
                "∇log p_t of a Gaussian blob is not zero.",
            },
        ),
        Question(
            "Reverse diffusion, as a member of this family, is …",
            (
                "the member with g_t² = β_t (noise = 1)",
                "the member with g_t = 0",
                "not a member: it samples a different distribution",
            ),
            "the member with g_t² = β_t (noise = 1)",
            "β_t is the noise rate of the forward process whose marginals are the path's Gaussians; "
            "reversing it gives drift v + (β_t/2)·score and noise √β_t dW.",
            hints={
                "the member with g_t = 0": "g_t = 0 removes the dW term: that is the probability-flow ODE.",
                "not a member: it samples a different distribution": "Compare the noise = 1 panel's energy "
                "distance with the noise floor.",
            },
        ),
    ),
    "guide": (
        Question(
            "With this page's convention, which w gives exactly the conditional field v(z, t | c)?",
            ("w = 1", "w = 0", "w = 2"),
            "w = 1",
            "v_w = v_∅ + w (v_c − v_∅) is v_c at w = 1 and v_∅ at w = 0.",
            hints={
                "w = 0": "At w = 0 the bracket vanishes: what is left is the null label's field.",
                "w = 2": "That is Ho & Salimans' w = 1: their w counts from the conditional field.",
            },
        ),
        Question(
            "Why train with label dropout (the label replaced by ∅ on some rows)?",
            (
                "So the one network also learns the unconditional field v(z, t | ∅)",
                "To regularise the conditional field against overfitting",
                "To make training faster",
            ),
            "So the one network also learns the unconditional field v(z, t | ∅)",
            "Guidance needs both fields; dropout trains them in one network, no separate classifier or model.",
            hints={
                "To regularise the conditional field against overfitting": "Without dropout, which field "
                "would v(z, t | ∅) be? The network would never have seen ∅.",
                "To make training faster": "It trades some of the conditional rows for null rows: look at "
                "how rough the w = 0 panel still is.",
            },
        ),
        Question(
            "Raising w far above 1 …",
            (
                "keeps samples in their class but pushes some off the data",
                "always gives better samples",
                "gives the unconditional distribution",
            ),
            "keeps samples in their class but pushes some off the data",
            "The guided field is no distribution's field: fidelity to the class goes up, diversity and "
            "realism down (the pitfall's pink samples).",
            hints={
                "always gives better samples": "Count the pink samples in the pitfall's panels.",
                "gives the unconditional distribution": "That is w = 0; large w moves away from it.",
            },
        ),
    ),
    "one_step": (
        Question(
            "On the linear path from noise, the exact field at t = 0 is v(z, 0) = …",
            ("E[z₁] − z", "z₁ − z₀ for a random data point z₁", "0"),
            "E[z₁] − z",
            "At t = 0 the point is pure noise, independent of z₁, so the posterior mean is the data mean.",
            hints={
                "z₁ − z₀ for a random data point z₁": "That is the conditional target of training; the field "
                "averages it over z₁ given z_t, and at t = 0 z_t says nothing about z₁.",
                "0": "The noise sits around 0 and the data elsewhere: something must move the particles.",
            },
        ),
        Question(
            "The average velocity u(z₀, 0, 1) equals v(z₀, 0) when …",
            (
                "the ODE's path from z₀ is a straight line at constant speed",
                "always: an average of v is v",
                "never",
            ),
            "the ODE's path from z₀ is a straight line at constant speed",
            "The chord equals the tangent only on a straight path: what rectified flow (lesson 6) aims for.",
            hints={
                "always: an average of v is v": "u averages v along the path, over times s from 0 to 1, "
                "where v(z_s, s) changes.",
                "never": "Think of a path that is already straight (lesson 6's reflow tries to make them so).",
            },
        ),
        Question(
            "With K Euler steps on the exact field, the last step returns …",
            ("the posterior mean E[z₁ | z_t] at t = 1 − 1/K", "a fresh data sample", "the noise z₀"),
            "the posterior mean E[z₁ | z_t] at t = 1 − 1/K",
            "z + (1 − t) v(z, t) = E[z₁ | z_t = z] for the linear path: an average of data points.",
            hints={
                "a fresh data sample": "Look at the pitfall's 2-step panel: are those points on the data?",
                "the noise z₀": "The steps carry the particles forward, to t = 1.",
            },
        ),
        Question(
            "MeanFlow regresses u_θ(z_r, r, t) on …",
            (
                "v(z_r, r) + (t − r) d/dr u(z_r, r, t), with its gradient stopped",
                "v(z_r, r), the flow matching target",
                "z₁ − z₀ for a random data point z₁",
            ),
            "v(z_r, r) + (t − r) d/dr u(z_r, r, t), with its gradient stopped",
            "That is the MeanFlow identity, from differentiating (t − r) u = ∫ v ds in r; d/dr u is one JVP.",
            hints={
                "v(z_r, r), the flow matching target": "That is the identity only at r = t: without the "
                "correction u would learn the tangent, and one step would give the mean again.",
                "z₁ − z₀ for a random data point z₁": "That is a chord of a conditional straight line, not of the "
                "marginal ODE's curved path: its average over z₁ is v, the tangent.",
            },
        ),
    ),
}
