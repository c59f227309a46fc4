// Autograd of crossnet_fast::grid_sample in C++ (every device: the Autograd alias key), so that a
// call does not pass through Python: models such as RAFT sample hundreds of small grids per
// forward, where the Python wrapper of torch.library.register_autograd cost about 4 us per call
// (no_grad) to 12 us (with grad) against PyTorch's own grid_sample at 1.6 us. The backward calls
// the grid_sample_backward op through the dispatcher, like the Python registration it replaces
// (crossnet_fast/ops/_registration.py keeps the Python one for the Triton op family, and for
// every other op here). Double backward is not supported (as before): grid_sample_backward has
// no autograd.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <tuple>

namespace crossnet_fast {
namespace {

at::Tensor grid_sample_op(const at::Tensor& input, const at::Tensor& grid, c10::string_view padding,
                          bool align_corners) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("crossnet_fast::grid_sample", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view, bool)>();
  return op.call(input, grid, padding, align_corners);
}

std::tuple<at::Tensor, at::Tensor> grid_sample_backward_op(const at::Tensor& grad_out, const at::Tensor& input,
                                                           const at::Tensor& grid, c10::string_view padding,
                                                           bool align_corners, std::array<bool, 2> output_mask) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("crossnet_fast::grid_sample_backward", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                    c10::string_view, bool, std::array<bool, 2>)>();
  return op.call(grad_out, input, grid, padding, align_corners, output_mask);
}

class GridSampleFunction : public torch::autograd::Function<GridSampleFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input, const at::Tensor& grid,
                            const std::string& padding, bool align_corners) {
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["align_corners"] = align_corners;
    ctx->save_for_backward({input, grid});
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return grid_sample_op(input, grid, padding, align_corners);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outs) {
    const auto saved = ctx->get_saved_variables();
    const bool need_input = ctx->needs_input_grad(0), need_grid = ctx->needs_input_grad(1);
    auto [grad_input, grad_grid] =
        grid_sample_backward_op(grad_outs[0], saved[0], saved[1], ctx->saved_data["padding"].toStringRef(),
                                ctx->saved_data["align_corners"].toBool(), {need_input, need_grid});
    return {need_input ? grad_input : at::Tensor(), need_grid ? grad_grid : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor grid_sample_autograd(const at::Tensor& input, const at::Tensor& grid, c10::string_view padding,
                                bool align_corners) {
  return GridSampleFunction::apply(input, grid, std::string(padding), align_corners);
}

}  // namespace

TORCH_LIBRARY_IMPL(crossnet_fast, Autograd, m) { m.impl("grid_sample", &grid_sample_autograd); }

}  // namespace crossnet_fast
