/* Tutorial 01: your GPU through Vulkan. Lists the Vulkan devices with plain Vulkan calls (an
 * instance, the physical devices, their compute queues and memory), then asks vkgrad for the
 * same devices and the one it would choose. README.md walks through it. */
#include <stdio.h>
#include <string.h>
#include <volk.h>

#include "vkgrad.h"

static const char *type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv; /* --test changes nothing here: the program is already small */

    /* 1. The loader: libvulkan finds the drivers installed on this machine. */
    if (volkInitialize() != VK_SUCCESS) {
        printf("no Vulkan loader: install libvulkan1 and a driver (mesa-vulkan-drivers)\n");
        return 1;
    }

    /* 2. An instance: our connection to the loader and, through it, every driver. */
    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "tutorial-01",
                              .apiVersion = VK_API_VERSION_1_1 };
    VkInstanceCreateInfo info = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app };
    VkInstance instance;
    if (vkCreateInstance(&info, NULL, &instance) != VK_SUCCESS) return 1;
    volkLoadInstanceOnly(instance);

    /* 3. The physical devices: every GPU (or CPU implementation) a driver offers. */
    uint32_t count = 0;
    vkEnumeratePhysicalDevices(instance, &count, NULL);
    VkPhysicalDevice devices[16];
    if (count > 16) count = 16;
    vkEnumeratePhysicalDevices(instance, &count, devices);
    printf("Vulkan sees %u device(s)\n", count);

    for (uint32_t i = 0; i < count; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devices[i], &p);
        printf("device %u: %s (%s), Vulkan %u.%u\n", i, p.deviceName, type_name(p.deviceType),
               VK_API_VERSION_MAJOR(p.apiVersion), VK_API_VERSION_MINOR(p.apiVersion));

        /* 4. Queue families: where work is submitted. We need one that can run compute. */
        uint32_t nq = 0;
        vkGetPhysicalDeviceQueueFamilyProperties(devices[i], &nq, NULL);
        VkQueueFamilyProperties q[16];
        if (nq > 16) nq = 16;
        vkGetPhysicalDeviceQueueFamilyProperties(devices[i], &nq, q);
        for (uint32_t f = 0; f < nq; f++)
            if (q[f].queueFlags & VK_QUEUE_COMPUTE_BIT) printf("  queue family %u can run compute shaders\n", f);

        /* 5. The limits a compute library lives by. */
        printf("  largest workgroup: %u invocations\n", p.limits.maxComputeWorkGroupInvocations);
        printf("  one storage buffer binding addresses at most %u MiB\n", p.limits.maxStorageBufferRange >> 20);
    }
    vkDestroyInstance(instance, NULL);

    /* 6. The same through vkgrad: one line per device, and the one vkg_init would pick. */
    vkg_device_info list[16];
    int n = vkg_device_list(list, 16);
    for (int i = 0; i < n && i < 16; i++) {
        char line[1024];
        vkg_device_line(&list[i], line, sizeof line);
        printf("%s %s\n", list[i].is_default ? "default ->" : "          ", line);
    }
    if (vkg_init(NULL) != VKG_OK) return 1;
    printf("vkg_init chose device %d\n", vkg_device()->index);
    printf("  %s\n", vkg_device()->name);
    vkg_shutdown();
    return 0;
}
