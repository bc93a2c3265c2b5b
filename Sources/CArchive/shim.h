#include <archive.h>
#include <archive_entry.h>

/* libarchive defines its file-type codes as macros with casts (AE_IFREG etc.),
   which Swift cannot import; re-export them as typed constants. */
static const unsigned int SBI_AE_IFMT = AE_IFMT;
static const unsigned int SBI_AE_IFREG = AE_IFREG;
static const unsigned int SBI_AE_IFLNK = AE_IFLNK;
static const unsigned int SBI_AE_IFSOCK = AE_IFSOCK;
static const unsigned int SBI_AE_IFCHR = AE_IFCHR;
static const unsigned int SBI_AE_IFBLK = AE_IFBLK;
static const unsigned int SBI_AE_IFDIR = AE_IFDIR;
static const unsigned int SBI_AE_IFIFO = AE_IFIFO;
