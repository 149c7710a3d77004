// SPDX-License-Identifier: GPL-2.0
/*
 * kinject.ko: the secret-arena device of the kinject appliance (SPEC.md §2).
 *
 * User space keeps decrypted firmware and key material in an arena; this
 * module is the arena backend the appliance image loads, because the kernel
 * can give guarantees and a tamper response that user space cannot:
 *
 *  - each open() of /dev/kinject is one arena; the first mmap() (MAP_SHARED,
 *    offset 0) allocates its pages, zeroed, outside the page cache and the
 *    LRU, so they are never swapped; later mmap()s of the same file (the fd
 *    the keeper passes to the injector) map the same pages;
 *  - the mappings are VM_DONTCOPY (a fork()ed child never sees them),
 *    VM_DONTDUMP (never in a core), VM_DONTEXPAND and VM_IO: get_user_pages
 *    refuses them, so /proc/PID/mem and ptrace cannot read them, and
 *    MADV_DOFORK / MADV_DODUMP cannot undo the flags;
 *  - a read-only mapping loses VM_MAYWRITE: mprotect() cannot make it
 *    writable (the injector's view);
 *  - the pages are wiped (memzero_explicit) and freed when the last
 *    reference to the file goes (every fd closed, every mapping unmapped);
 *  - zeroize (ioctl KINJECT_IOC_ZEROIZE, or writing the sysfs attribute
 *    /sys/class/misc/kinject/zeroize) wipes every live arena at once and
 *    sends SIGTERM to each arena's owner, so a running job stops issuing
 *    and records why; the panic and reboot notifiers wipe too;
 *  - counters in sysfs: arenas, bytes (live) and zeroize_events (total).
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/panic_notifier.h>
#include <linux/reboot.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>

#include "kinject_ioctl.h"

/* One arena is at most this many bytes (the device is root-only anyway). */
static unsigned int max_arena_mib = 256;
module_param(max_arena_mib, uint, 0444);
MODULE_PARM_DESC(max_arena_mib, "largest arena in MiB (default 256)");

struct kinject_arena {
	struct list_head node;	/* in kinject_arenas, under kinject_lock */
	struct mutex map_lock;	/* serialises the allocating first mmap */
	struct page **pages;	/* published under kinject_lock */
	unsigned long npages;	/* 0 until the first mmap */
	struct pid *owner;	/* the opener's thread group: told on zeroize */
};

/*
 * A spinlock, not a mutex: the panic notifier walks the list too, and may
 * only try to take it.
 */
static DEFINE_SPINLOCK(kinject_lock);
static LIST_HEAD(kinject_arenas);

static atomic_long_t kinject_n_arenas = ATOMIC_LONG_INIT(0);
static atomic_long_t kinject_n_bytes = ATOMIC_LONG_INIT(0);
static atomic_long_t kinject_n_zeroize = ATOMIC_LONG_INIT(0);

#ifndef KINJECT_HAVE_VM_FLAGS_MOD
static void kinject_vm_flags(struct vm_area_struct *vma, unsigned long set,
			     unsigned long clear)
{
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
}
#else
static void kinject_vm_flags(struct vm_area_struct *vma, unsigned long set,
			     unsigned long clear)
{
	vm_flags_mod(vma, set, clear);
}
#endif

static void kinject_wipe_pages(struct page **pages, unsigned long n)
{
	unsigned long i;

	for (i = 0; i < n; i++)
		memzero_explicit(page_address(pages[i]), PAGE_SIZE);
}

static void kinject_free_pages(struct page **pages, unsigned long n)
{
	unsigned long i;

	for (i = 0; i < n; i++)
		__free_page(pages[i]);
	kvfree(pages);
}

/* Wipe every live arena; the caller holds kinject_lock (or is panicking). */
static void kinject_wipe_all_locked(bool notify)
{
	struct kinject_arena *a;

	list_for_each_entry(a, &kinject_arenas, node) {
		if (!a->npages)
			continue;
		kinject_wipe_pages(a->pages, a->npages);
		if (notify && a->owner)
			kill_pid(a->owner, SIGTERM, 1);
	}
}

static void kinject_zeroize(void)
{
	spin_lock(&kinject_lock);
	kinject_wipe_all_locked(true);
	spin_unlock(&kinject_lock);
	atomic_long_inc(&kinject_n_zeroize);
	pr_warn("zeroize: every arena wiped (pid %d)\n",
		task_tgid_nr(current));
}

static int kinject_open(struct inode *inode, struct file *file)
{
	struct kinject_arena *a;

	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	mutex_init(&a->map_lock);
	a->owner = get_pid(task_tgid(current));
	spin_lock(&kinject_lock);
	list_add(&a->node, &kinject_arenas);
	spin_unlock(&kinject_lock);
	atomic_long_inc(&kinject_n_arenas);
	file->private_data = a;
	return 0;
}

/* The last reference to the file: no fd and no mapping is left. */
static int kinject_release(struct inode *inode, struct file *file)
{
	struct kinject_arena *a = file->private_data;

	spin_lock(&kinject_lock);
	list_del(&a->node);
	spin_unlock(&kinject_lock);
	if (a->npages) {
		kinject_wipe_pages(a->pages, a->npages);
		kinject_free_pages(a->pages, a->npages);
		atomic_long_sub(a->npages << PAGE_SHIFT, &kinject_n_bytes);
	}
	put_pid(a->owner);
	mutex_destroy(&a->map_lock);
	kfree(a);
	atomic_long_dec(&kinject_n_arenas);
	return 0;
}

static int kinject_alloc(struct kinject_arena *a, unsigned long n)
{
	struct page **pages;
	unsigned long i;

	if (!n || n > ((unsigned long)max_arena_mib << (20 - PAGE_SHIFT)))
		return -EINVAL;
	pages = kvcalloc(n, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		pages[i] = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
		if (!pages[i])
			goto err_free;
	}
	spin_lock(&kinject_lock);
	a->pages = pages;
	a->npages = n;
	spin_unlock(&kinject_lock);
	atomic_long_add(n << PAGE_SHIFT, &kinject_n_bytes);
	return 0;

err_free:
	kinject_free_pages(pages, i);
	return -ENOMEM;
}

static int kinject_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct kinject_arena *a = file->private_data;
	int ret;

	/* A private mapping would copy the secret on write. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	mutex_lock(&a->map_lock);
	if (!a->npages) {
		ret = vma->vm_pgoff ? -EINVAL : kinject_alloc(a, vma_pages(vma));
		if (ret)
			goto out;
	}
	kinject_vm_flags(vma, VM_IO | VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY,
			 (vma->vm_flags & VM_WRITE) ? 0 : VM_MAYWRITE);
	ret = vm_map_pages(vma, a->pages, a->npages);
out:
	mutex_unlock(&a->map_lock);
	return ret;
}

static long kinject_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	switch (cmd) {
	case KINJECT_IOC_ZEROIZE:
		kinject_zeroize();
		return 0;
	default:
		return -ENOTTY;
	}
}

static const struct file_operations kinject_fops = {
	.owner = THIS_MODULE,
	.open = kinject_open,
	.release = kinject_release,
	.mmap = kinject_mmap,
	.unlocked_ioctl = kinject_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/* ---- sysfs: /sys/class/misc/kinject/ ---- */

static ssize_t zeroize_store(struct device *dev, struct device_attribute *attr,
			     const char *buf, size_t count)
{
	bool yes;
	int ret;

	ret = kstrtobool(buf, &yes);
	if (ret)
		return ret;
	if (yes)
		kinject_zeroize();
	return count;
}
static DEVICE_ATTR_WO(zeroize);

static ssize_t arenas_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&kinject_n_arenas));
}
static DEVICE_ATTR_RO(arenas);

static ssize_t bytes_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&kinject_n_bytes));
}
static DEVICE_ATTR_RO(bytes);

static ssize_t zeroize_events_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&kinject_n_zeroize));
}
static DEVICE_ATTR_RO(zeroize_events);

static struct attribute *kinject_attrs[] = {
	&dev_attr_zeroize.attr,
	&dev_attr_arenas.attr,
	&dev_attr_bytes.attr,
	&dev_attr_zeroize_events.attr,
	NULL,
};
ATTRIBUTE_GROUPS(kinject);

static struct miscdevice kinject_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "kinject",
	.fops = &kinject_fops,
	.groups = kinject_groups,
	.mode = 0600,
};

/* ---- panic and reboot: wipe before the machine goes ---- */

static int kinject_panic(struct notifier_block *nb, unsigned long event,
			 void *unused)
{
	/* Other CPUs are stopped; a lock held by one of them stays held. */
	bool locked = spin_trylock(&kinject_lock);

	kinject_wipe_all_locked(false);
	if (locked)
		spin_unlock(&kinject_lock);
	return NOTIFY_DONE;
}

static int kinject_reboot(struct notifier_block *nb, unsigned long event,
			  void *unused)
{
	spin_lock(&kinject_lock);
	kinject_wipe_all_locked(false);
	spin_unlock(&kinject_lock);
	return NOTIFY_DONE;
}

static struct notifier_block kinject_panic_nb = {
	.notifier_call = kinject_panic,
	.priority = INT_MAX,
};

static struct notifier_block kinject_reboot_nb = {
	.notifier_call = kinject_reboot,
	.priority = INT_MAX,
};

static int __init kinject_init(void)
{
	int ret;

	atomic_notifier_chain_register(&panic_notifier_list,
				       &kinject_panic_nb);
	ret = register_reboot_notifier(&kinject_reboot_nb);
	if (ret)
		goto err_panic;
	ret = misc_register(&kinject_misc);
	if (ret)
		goto err_reboot;
	pr_info("/dev/kinject ready (arenas up to %u MiB)\n", max_arena_mib);
	return 0;

err_reboot:
	unregister_reboot_notifier(&kinject_reboot_nb);
err_panic:
	atomic_notifier_chain_unregister(&panic_notifier_list,
					 &kinject_panic_nb);
	return ret;
}

/* No arena is live here: each open file holds a reference to the module. */
static void __exit kinject_exit(void)
{
	misc_deregister(&kinject_misc);
	unregister_reboot_notifier(&kinject_reboot_nb);
	atomic_notifier_chain_unregister(&panic_notifier_list,
					 &kinject_panic_nb);
}

module_init(kinject_init);
module_exit(kinject_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kinject secret arena: pinned, never dumped, zeroizable");
MODULE_AUTHOR("kinject");
