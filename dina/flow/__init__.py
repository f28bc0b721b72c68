"""Model-free flow matching: the linear path, fixed-step ODE solvers and the velocity loss.

Shared by the image refiner (`dina.vision.refiner`) and the audio mel decoder; nothing here
knows about networks, which are passed in as velocity fields `(x_B*, t_B) -> v_B*`.
"""

from dina.flow.anchored import anchored_flow_loss, anchored_flow_sample, x1_to_velocity
from dina.flow.loss import flow_matching_loss
from dina.flow.path import CondOTPath, PathSample, expand_time, sample_noise, sample_time
from dina.flow.solver import METHODS, ODESolution, VelocityField, solve_ode, time_grid

__all__ = [
    "METHODS",
    "CondOTPath",
    "ODESolution",
    "PathSample",
    "VelocityField",
    "anchored_flow_loss",
    "anchored_flow_sample",
    "expand_time",
    "flow_matching_loss",
    "sample_noise",
    "sample_time",
    "solve_ode",
    "time_grid",
    "x1_to_velocity",
]
