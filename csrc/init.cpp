// Op schemas of the crossnet_fast library. Kernels register per dispatch key in csrc/cpu and
// csrc/cuda; fake and autograd registrations live in crossnet_fast/ops/_registration.py, whose
// SCHEMAS table must hold the same strings (a test checks that), except grid_sample's autograd,
// which is C++ (csrc/autograd.cpp: no Python per call).
#include <Python.h>
#include <torch/library.h>

// Importing crossnet_fast._C loads this library and runs the TORCH_LIBRARY initialisers; the
// module itself is empty, so no pybind11 is needed.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(crossnet_fast, m) {
  m.def("multiscale_warp(Tensor[] feats, Tensor[] flows, str padding) -> Tensor[]");
  m.def(
      "multiscale_warp_backward(Tensor[] grad_outs, Tensor[] feats, Tensor[] flows, str padding, "
      "bool[2] output_mask) -> (Tensor[], Tensor[])");
  m.def("grid_sample(Tensor input, Tensor grid, str padding, bool align_corners) -> Tensor");
  m.def(
      "grid_sample_backward(Tensor grad_out, Tensor input, Tensor grid, str padding, bool align_corners, "
      "bool[2] output_mask) -> (Tensor, Tensor)");
  m.def("upsample_flow(Tensor flow, int scale) -> Tensor");
  m.def("upsample_flow_backward(Tensor grad_out, int scale) -> Tensor");
  m.def("resize_flow(Tensor flow, int height, int width, bool align_corners) -> Tensor");
  m.def("resize_flow_backward(Tensor grad_out, int height, int width, bool align_corners) -> Tensor");
  m.def(
      "charbonnier(Tensor pred, Tensor target, float eps, str reduction, bool compute_grad) -> "
      "(Tensor, Tensor)");
  m.def("charbonnier_backward(Tensor grad_loss, Tensor pred, Tensor target, float eps, str reduction) -> Tensor");
  m.def("correlation(Tensor f1, Tensor f2, int max_displacement, int dilation, int stride) -> Tensor");
  m.def(
      "correlation_backward(Tensor grad_out, Tensor f1, Tensor f2, int max_displacement, int dilation, int stride, "
      "bool[2] output_mask) -> (Tensor, Tensor)");
}
