//! The AWS side of `extend`, `status`, `destroy` and `credentials`: CloudFormation change
//! sets, the artifacts bucket, Lambda code versions and SSM SecureStrings.
//!
//! Every AWS call goes through [`call`], which turns an SDK error into a message naming
//! the action, the resource and what the user can do (missing credentials, a region that
//! does not answer, AccessDenied with the denied action).

mod artifacts;
mod change_set;
mod credentials;
mod destroy;
mod extend;
mod session;
mod status;

pub use credentials::credentials;
pub use destroy::destroy;
pub use extend::extend;
pub use status::status;
