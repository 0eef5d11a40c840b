"""The lessons' self-check questions, one tuple per lesson, keyed by the self-check's key.

Kept out of the pages so that each page stays a short composition of prose, controls and figures;
the hints point at the idea behind each wrong answer (the page's figure or formula it refers to).
"""

from __future__ import annotations

from .checks_sampling import SAMPLING_CHECKS
from .kit import Question

__all__ = ["SELF_CHECKS"]

SELF_CHECKS: dict[str, tuple[Question, ...]] = {
    "ode": (
        Question(
            "To draw a new sample you integrate $dz/dt = v(z, t)$ …",
            ("forward, from noise at t=0 to t=1", "backward, from noise at t=1 to t=0", "either way works"),
            "forward, from noise at t=0 to t=1",
            "Noise lives at t=0, data at t=1; the field was built (or trained) for that direction.",
            hints={
                "backward, from noise at t=1 to t=0": "Look at the bottom-right panel of the pitfall.",
                "either way works": "Compare the two pink panels of the pitfall with the sampling panel.",
            },
        ),
        Question(
            "Can two particles be at the same place at the same time and then go separate ways?",
            ("No: the ODE has one solution through each (z, t)", "Yes, where paths cross"),
            "No: the ODE has one solution through each (z, t)",
            "For t < 1 the field is smooth (Lipschitz), so each (z, t) has one velocity and one path through "
            "it; paths cross in the picture only at different times. At t = 1 the field of bare data points "
            "is not Lipschitz: many paths end on the same point.",
            hints={"Yes, where paths cross": "At a shared (z, t), what velocity would each particle get?"},
        ),
        Question(
            "You integrate a data point backward from t=1 to t=0 and then forward again. You get …",
            ("the same data point (up to solver error)", "a different data point", "a Gaussian sample"),
            "the same data point (up to solver error)",
            "The flow is invertible: the round-trip panel measures the solver's error only.",
            hints={
                "a Gaussian sample": "That is what you have halfway, at t=0. Then you go forward again.",
                "a different data point": "Each (z, t) has one path through it, forward and backward alike.",
            },
        ),
    ),
    "objective": (
        Question(
            "On the linear path, the conditional target u_t(z_t | z_1) is …",
            ("z_1 − z_0", "z_1 − z_t", "z_1"),
            "z_1 − z_0",
            "d/dt (t z_1 + (1 − t) z_0) = z_1 − z_0, which also equals (z_1 − z_t)/(1 − t).",
            hints={
                "z_1 − z_t": "Differentiate z_t = t z_1 + (1 − t) z_0 in t.",
                "z_1": "That is a position, not a velocity.",
            },
        ),
        Question(
            "The conditional loss stops falling at about the floor. What does that mean?",
            (
                "The model may be fine: the floor is the target's own noise",
                "Training is stuck: raise the learning rate",
            ),
            "The model may be fine: the floor is the target's own noise",
            "The floor E|u_t(z|z_1) − u_t(z)|² does not depend on θ; watch the field error, not the raw loss.",
            hints={
                "Training is stuck: raise the learning rate": "Look at the field error plot while the loss is flat."
            },
        ),
        Question(
            "Conditional and marginal targets give …",
            (
                "the same expected gradient and the same minimiser",
                "different minimisers",
                "the same loss values",
            ),
            "the same expected gradient and the same minimiser",
            "They differ by a constant, the floor, so their expected gradients agree; a batch's gradients differ "
            "by noise, which is why the conditional target needs more steps.",
            hints={
                "the same loss values": "Compare the two loss curves: they differ by the floor.",
                "different minimisers": "The difference of the two losses does not depend on θ (step 3).",
            },
        ),
    ),
    "diffusion": (
        Question(
            "The reverse SDE and the probability-flow ODE of the same diffusion model …",
            (
                "have the same marginals p_t, but different paths",
                "follow the same paths",
                "sample different distributions",
            ),
            "have the same marginals p_t, but different paths",
            "The ODE is built so that its particles have the SDE's distribution at every t, without the noise.",
            hints={
                "follow the same paths": "Compare a panel of the top row above with the one below it: "
                "jagged against smooth.",
                "sample different distributions": "Both are built from the same score to have the same p_t.",
            },
        ),
        Question(
            "A noise predictor ε_θ and a velocity v_θ on the same path …",
            (
                "convert into each other, given z_t, α_t, σ_t and their time derivatives",
                "need different ODE solvers",
                "cannot be compared",
            ),
            "convert into each other, given z_t, α_t, σ_t and their time derivatives",
            "z_t = α_t z_1 + σ_t z_0 ties ẑ_0 and ẑ_1 to each other; the velocity α̇_t ẑ_1 + σ̇_t ẑ_0 also "
            "needs the derivatives (fmcore.convert).",
            hints={
                "need different ODE solvers": "Once converted to a velocity, any ODE solver takes it.",
                "cannot be compared": "Write ẑ_1 in terms of ε_θ using z_t = α_t z_1 + σ_t z_0.",
            },
        ),
        # Euler-Maruyama with additive noise: strong order 1, weak order 1 (Kloeden & Platen 1992,
        # sec. 10.2 and 14.1); the reverse VP SDE's diffusion coefficient sqrt(beta_t) does not depend on z.
        Question(
            "Where Euler–Maruyama on the reverse SDE needs more steps than Euler on the ODE, why?",
            (
                "A larger error constant, and fresh noise at every coarse step",
                "Euler–Maruyama has strong order ½",
                "Its network is worse",
            ),
            "A larger error constant, and fresh noise at every coarse step",
            "The drift carries the full β_t times the score (twice the ODE's), and every coarse step injects "
            "noise that later steps must remove. The order is the same as Euler's on the ODE.",
            hints={
                "Its network is worse": "The PF-ODE uses the very same network as the SDE.",
                "Euler–Maruyama has strong order ½": "That is for noise that depends on z. Here √β_t does not "
                "(additive noise): strong order 1, and the weak order, what counts for sampling, is 1 too.",
            },
        ),
    ),
    "solvers": (
        Question(
            "On log-log axes, error against NFE for a method of order p is a line of slope …",
            ("−p", "−1/p", "+p"),
            "−p",
            "Error ~ h^p and NFE ~ 1/h, so log error = −p log NFE + const.",
            hints={"+p": "More NFE should mean less error.", "−1/p": "Write error ~ h^p with h ~ 1/NFE."},
        ),
        Question(
            "RK4 with 25 steps and Euler with 100 steps cost …",
            ("the same NFE (100)", "RK4 costs 4× less", "RK4 costs 4× more"),
            "the same NFE (100)",
            "RK4 makes 4 evaluations per step: 25 × 4 = 100 = 100 × 1.",
            hints={
                "RK4 costs 4× less": "Count the evaluations per step in the formulas above.",
                "RK4 costs 4× more": "4 NFE per step, yes, but for a quarter of the steps: multiply.",
            },
        ),
        Question(
            "Why does RK4 lose its fourth order on the point-cloud field?",
            (
                "The field gets stiff near t = 1 (dv/dz ≈ −I/(1−t)) and RK4's last stage evaluates it there",
                "The particles move infinitely fast near t = 1",
                "float32 rounding",
            ),
            "The field gets stiff near t = 1 (dv/dz ≈ −I/(1−t)) and RK4's last stage evaluates it there",
            "An order-p bound needs bounded derivatives of v; its z-derivatives grow like 1/(1−t)^p, while the "
            "speed along the exact paths stays O(1).",
            hints={
                "float32 rounding": "Rounding flattens the curves near 10⁻⁵; RK4's trouble starts far above.",
                "The particles move infinitely fast near t = 1": "Look at the measured speeds after the reveal.",
            },
        ),
    ),
    "training": (
        Question(
            "In one training step, the times t are drawn …",
            (
                "independently for each point, uniform on [0, 1]",
                "once per batch",
                "from the solver's time grid",
            ),
            "independently for each point, uniform on [0, 1]",
            "Each (z₁, z₀, t) triple is one regression example; spreading t over the batch lowers the variance.",
            hints={
                "from the solver's time grid": "Training never runs a solver.",
                "once per batch": "One t per batch trains one noise level per step: a noisier gradient.",
            },
        ),
        Question(
            "The cosine schedule α = sin(πt/2), σ = cos(πt/2) keeps α² + σ² equal to …",
            ("1 at every t", "t", "1 − t"),
            "1 at every t",
            "sin² + cos² = 1: that is what 'variance preserving' means.",
            hints={
                "t": "Put t = 0: sin 0 = 0, cos 0 = 1. What is α² + σ² there?",
                "1 − t": "Put t = 1: sin(π/2) = 1. What is α² + σ² there?",
            },
        ),
        Question(
            "You trained on cosine and want the model's particles on the linear path. You …",
            ("re-express it with change_schedule", "use the same network unchanged", "must retrain"),
            "re-express it with change_schedule",
            "Equal log-SNR gives the time map; a rescaling of z does the rest. No retraining.",
            hints={
                "use the same network unchanged": "Look at the bottom-left panel of the pitfall.",
                "must retrain": "Two schedules with the same end points are one path re-timed and rescaled.",
            },
        ),
    ),
    "reflow_check": (
        Question(
            "Reflow trains on pairs (z₀, z₁) where z₁ is …",
            ("the first model's sample from that z₀", "a random data point", "the data point nearest to z₀"),
            "the first model's sample from that z₀",
            "The coupling is fixed by the first flow: noise and where the flow takes it.",
            hints={
                "a random data point": "That is plain flow matching, whose straight lines cross.",
                "the data point nearest to z₀": "Nearest pairs would be a guess at a coupling; reflow uses the flow's own.",
            },
        ),
        Question(
            "Straightness S = 0 means …",
            (
                "every path is a straight line at constant speed: one Euler step is exact",
                "the paths never cross",
                "the model is trained",
            ),
            "every path is a straight line at constant speed: one Euler step is exact",
            "S integrates the squared gap between the velocity and the average velocity z₁ − z₀.",
            hints={
                "the paths never cross": "The marginal field's paths never cross either, and they are curved.",
                "the model is trained": "A trained first flow has S > 0: look at its RK4 paths above.",
            },
        ),
        Question(
            "Can reflow make samples closer to the data than the first model's best samples?",
            (
                "No: with pairs made forward from noise, it learns the first model's map",
                "Yes: each round improves the distribution",
            ),
            "No: with pairs made forward from noise, it learns the first model's map",
            "Reflow keeps the end distribution (at best) and straightens the way there; see the pitfall.",
            hints={"Yes: each round improves the distribution": "What does the reflowed model regress on?"},
        ),
    ),
    "continuity": (
        Question(
            "The continuity equation ∂ₜp + ∇·(p u) = 0 says that …",
            (
                "probability is moved by u, never created or destroyed",
                "the density is the same at every t",
                "u is the gradient of log p",
            ),
            "probability is moved by u, never created or destroyed",
            "The change of p in a region is what the flux p u carries across its boundary.",
            hints={
                "the density is the same at every t": "Then ∂ₜp = 0; yet p₀ is noise and p₁ is the data.",
                "u is the gradient of log p": "That is the score; the equation constrains any field that moves p.",
            },
        ),
        Question(
            "Why does the averaged field u_t(z) = E[u_t(z_t | z₁) | z_t = z] generate p_t?",
            (
                "Each conditional field generates its conditional path, and the equation is linear in p u",
                "Because the loss is minimised there",
                "Because its paths are straight",
            ),
            "Each conditional field generates its conditional path, and the equation is linear in p u",
            "Average the conditional fluxes p_t(z|z₁) u_t(z|z₁) over z₁: that is p_t u_t (Theorem 1).",
            hints={
                "Because the loss is minimised there": "The loss says which field is learned, not why it moves p₀ to p₁.",
                "Because its paths are straight": "Lesson 2: the marginal paths are curved.",
            },
        ),
        Question(
            "To compute log p₁(x) with a flow you …",
            (
                "solve backward to z₀ and add −∫ div v to log N(z₀)",
                "evaluate N(x; 0, I)",
                "sample many times and count",
            ),
            "solve backward to z₀ and add −∫ div v to log N(z₀)",
            "The instantaneous change of variables: one ODE solve per point, exact up to the solver's error.",
            hints={
                "evaluate N(x; 0, I)": "That is the density at t = 0; x lives at t = 1.",
                "sample many times and count": "That estimates a histogram; the flow gives the density itself.",
            },
        ),
    ),
    **SAMPLING_CHECKS,  # lessons 8 to 10
}
