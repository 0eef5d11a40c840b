"""Lesson 9 — guidance: a label-conditioned flow, the null label, and classifier-free guidance."""

import streamlit as st

from explorer.lessons import kit as lesson
from explorer.lessons import l9_guidance as cfg
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.figures import sampling as figures_sampling
from explorer.lessons.kit import Question

labelled_trainer = st.cache_resource(show_spinner="Training a labelled flow (1,500 steps)…")(
    cfg.labelled_trainer
)
guided_samples = st.cache_data(show_spinner="Sampling…")(cfg.guided_samples)
all_classes = st.cache_data(show_spinner=False)(cfg.all_classes)

lesson.setup_page("9 · Guidance")
st.markdown(
    "So far a flow sampled *the* data distribution. Give the network the class as a third input and it "
    "learns one field per class, $v(z, t \\mid c)$, trained with the same regression as before on triples "
    "$(z_t, t, c)$: its ideal is the exact field of that class's data. With **label dropout** the label is replaced by a "
    "**null label** $\\varnothing$ on a fraction of the rows (here 10%), so the same network also learns the "
    "unconditional field $v(z, t \\mid \\varnothing)$ of all the data. **Classifier-free guidance** (Ho & "
    "Salimans 2022, *Classifier-Free Diffusion Guidance*) mixes the two at sampling time:"
)
st.latex(
    r"v_w(z, t \mid c) = v(z, t \mid \varnothing) + w\,\big(v(z, t \mid c) - v(z, t \mid \varnothing)\big)"
    r"\qquad w = 0:\ \text{unconditional},\quad w = 1:\ \text{conditional},\quad w > 1:\ \text{guided}"
)
st.markdown(
    "**The convention here:** $w = 1$ is the conditional field. Ho & Salimans write $(1 + w)\\,\\varepsilon_c - "
    "w\\,\\varepsilon_\\varnothing$, so their $w$ is ours minus one. For $w > 1$ the field extrapolates past "
    "the class, *away from the other classes*: it is no longer the field of any distribution the model "
    "learned. For $w \\ne 0, 1$ each evaluation of $v_w$ runs the network twice (on $c$ and on $\\varnothing$, one "
    "doubled batch); $w = 0$ and $w = 1$ need one of the two fields only."
)

labelled_trainer()
left, right = st.columns([1, 3.2], gap="large")
with left:
    label = st.selectbox(
        "Class to sample",
        range(cfg.CLASS_COUNT),
        index=0,
        format_func=lambda k: f"Gaussian {k}",
        key="l9_label",
    )
    samples = guided_samples(label)
    data_radius = cfg.data_radius()

    def measure():
        one, three = (s for s in samples if s.guidance in (1.0, 3.0))
        return (
            "move outward, away from the other classes",
            f"From w = 1 to w = 3 the mean |z| goes {one.radius:.2f} → {three.radius:.2f} (the data's ring: "
            f"{data_radius:.2f}), the spread {one.spread:.2f} → {three.spread:.2f}, and the share off the data "
            f"{one.off_share:.0%} → {three.off_share:.0%}. The push v(z,t|c) − v(z,t|∅) points away from the "
            "other classes.",
        )

    revealed = lesson.predict_then_see(
        Question(
            "Raise the guidance from w = 1 to w = 3. The samples of your class …",
            (
                "stay where they are: w = 1 already is the class",
                "move outward, away from the other classes",
                "spread over all eight Gaussians",
            ),
            None,
            "",
            hints={
                "stay where they are: w = 1 already is the class": "w multiplies the difference "
                "v(z,t|c) − v(z,t|∅): for w > 1 the field goes further than the class's own field.",
                "spread over all eight Gaussians": "That is w = 0, the unconditional field (the left panel).",
            },
        ),
        key="l9_guidance",
        context=label,
        measure=measure,
    )
    st.markdown(
        f"<div class='fm-nfe'>{cfg.SOLVER_STEPS} <b>steps</b> of RK4 = <b>{samples[0].nfe} NFE</b> per sample; "
        "for w ≠ 0, 1 each NFE runs the network on c and on ∅</div>",
        unsafe_allow_html=True,
    )
with right:
    shown = samples if revealed else [s for s in samples if s.guidance < 3.0]
    lesson.chart(
        figures_sampling.guidance_figure(
            shown, labelled_trainer().data.numpy(), measured=revealed, target=cfg.centroid(label)
        ),
        "guidance",
    )

if revealed:
    st.dataframe(
        [
            {
                "w": f"{s.guidance:g}{s.meaning}",
                "in class": f"{s.in_class:.0%}",
                "off the data": f"{s.off_share:.1%}",
                "spread": f"{s.spread:.3f}",
                f"mean |z| (data: {data_radius:.2f})": f"{s.radius:.2f}",
                "NFE": s.nfe,
            }
            for s in samples
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"{cfg.SAMPLES} samples per panel from the same noise. “Off the data” (pink ×): farther from every "
        f"fresh data point than {cfg.SUPPORT_QUANTILE:.0%} of fresh data points are. “In class”: nearest the "
        "star, the class's centroid. Spread: RMS distance of the samples from their mean, per axis. The "
        "unconditional field (w = 0) is the model's roughest part: the null label is seen on only 10% of the "
        "rows, so after 1,500 steps its samples still bridge between Gaussians (an unlabelled model trained as "
        "long puts far fewer off the data)."
    )
else:
    st.caption("The panel for w = 3, and every measurement, appear once you reveal your prediction.")

with lesson.pitfall(
    "turning guidance up too far",
    "Larger $w$ buys class fidelity (every sample is in its class); Ho & Salimans measured the price as lost "
    "diversity. Here the price is plain to see: past a point the samples overshoot the data and land where no "
    "data lies. Below, every class sampled at once "
    f"({cfg.SAMPLES // cfg.CLASS_COUNT} samples each), off-support samples in pink:",
):
    lesson.chart(
        # w > 1 would answer the prediction above: those panels wait for the reveal
        figures_sampling.guidance_figure(
            [s for s in all_classes() if revealed or s.guidance <= 1.0],
            labelled_trainer().data.numpy(),
            columns=len(cfg.PITFALL_GUIDANCE),
            lim=3.5,  # large w throws samples far out
        ),
        "pitfall",
    )
    if not revealed:
        st.caption("The panels for w = 5 and w = 10 appear once you reveal your prediction above.")


lesson.self_check(SELF_CHECKS["guide"], key="guide")

lesson.playground_link(data=cfg.DATA, field="learned", solver=cfg.SOLVER, steps=cfg.SOLVER_STEPS)
