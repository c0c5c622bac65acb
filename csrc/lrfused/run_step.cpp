// Hands a checked step to the kernel of its device.
#include <c10/core/GradMode.h>

#include "lrfused/step_args.h"

namespace lrfused {

void run_step(const KernelStep& step) {
  if (step.device.is_cuda()) {
#ifdef LRFUSED_WITH_CUDA
    fused_step_cuda(step);
#else
    TORCH_CHECK(false, "params are on ", step.device,
                " but lrfused was built without CUDA (a build where no GPU is visible is CPU-only unless "
                "LRFUSED_CUDA=1 or TORCH_CUDA_ARCH_LIST asks for GPU targets); rebuild with CUDA torch and nvcc "
                "present, e.g. LRFUSED_CUDA=1 pip install --no-build-isolation .");
#endif
  } else {
    TORCH_CHECK(step.device.is_cpu(), "params must be on CPU or CUDA, got ", step.device);
    fused_step_cpu(step);
  }
  if (!step.staged_params.empty()) {
    c10::NoGradGuard no_grad;  // the params are leaves that may require grad
    for (const auto& [param, work] : step.staged_params) {
      param.copy_(work);
    }
  }
}

}  // namespace lrfused
